"""Round trip through confluent-kafka (librdkafka): each compression codec
produced and consumed back, and a transaction committed and one aborted,
seen by a read_committed consumer. Exits non-zero on any mismatch."""
import argparse
import sys

from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic


def read(bootstrap, topic, isolation="read_uncommitted"):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "reader",
                         "enable.auto.commit": False, "isolation.level": isolation})
    consumer.assign([TopicPartition(topic, 0, 0)])
    values = []
    while True:
        message = consumer.poll(3)
        if message is None:
            break
        if message.error():
            raise RuntimeError(message.error())
        values.append(message.value().decode())
    consumer.close()
    return values


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    bootstrap = parser.parse_args().bootstrap
    codecs = ["none", "gzip", "snappy", "lz4", "zstd"]
    admin = AdminClient({"bootstrap.servers": bootstrap})
    topics = [NewTopic(f"codec-{c}", 1, 1) for c in codecs] + [NewTopic("confluent-txn", 1, 1)]
    for future in admin.create_topics(topics).values():
        future.result()
    for codec in codecs:
        producer = Producer({"bootstrap.servers": bootstrap, "compression.type": codec,
                             "linger.ms": 20})
        expected = [f"{codec}-{i}-" + "payload " * 20 for i in range(500)]
        for value in expected:
            producer.produce(f"codec-{codec}", value=value)
        producer.flush(30)
        got = read(bootstrap, f"codec-{codec}")
        if got != expected:
            print(f"{codec}: read {len(got)} of {len(expected)} records, or out of order")
            return 1

    producer = Producer({"bootstrap.servers": bootstrap, "transactional.id": "confluent"})
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce("confluent-txn", value="kept")
    producer.commit_transaction(30)
    producer.begin_transaction()
    producer.produce("confluent-txn", value="dropped")
    producer.flush(30)
    producer.abort_transaction(30)
    committed = read(bootstrap, "confluent-txn", "read_committed")
    if committed != ["kept"]:
        print(f"read_committed saw {committed}")
        return 1
    print("confluent-kafka round trip ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
