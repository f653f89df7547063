"""A consume-transform-produce pipeline with exactly-once semantics
(confluent-kafka): reads `input` in group `pipeline`, writes each value
upper-cased to `output` in a transaction together with the consumed
offsets. Runs until `input` is drained (or is killed by the test)."""
import argparse
import sys

from confluent_kafka import Consumer, Producer, TopicPartition


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    # Long enough for a restarted member to wait out its dead predecessor's
    # session (6 s) before the group gives it the partition.
    parser.add_argument("--idle-seconds", type=float, default=15)
    args = parser.parse_args()
    consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": "pipeline",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "session.timeout.ms": 6000,
                         "isolation.level": "read_committed"})
    consumer.subscribe(["input"])
    producer = Producer({"bootstrap.servers": args.bootstrap, "transactional.id": "pipeline-1"})
    producer.init_transactions(30)
    idle = 0.0
    while idle < args.idle_seconds:
        messages = consumer.consume(num_messages=10, timeout=0.5)
        if not messages:
            idle += 0.5
            continue
        idle = 0.0
        producer.begin_transaction()
        for message in messages:
            if message.error():
                raise RuntimeError(message.error())
            producer.produce("output", value=message.value().upper())
        positions = consumer.position(consumer.assignment())
        producer.send_offsets_to_transaction(positions, consumer.consumer_group_metadata(), 30)
        producer.commit_transaction(30)
        print(f"committed up to {[(p.partition, p.offset) for p in positions]}", flush=True)
    consumer.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
