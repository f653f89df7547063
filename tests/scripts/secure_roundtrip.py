"""Produces records in transactions (one aborted, one committed) and
consumes them back read_committed in a consumer group over a secured
listener, with confluent-kafka (librdkafka) or kafka-python.
Security settings are given in librdkafka's names (--set key=value) and
translated for kafka-python. Exits non-zero on any mismatch or error."""
import argparse
import sys
import uuid

# librdkafka setting -> kafka-python argument
KAFKA_PYTHON_NAMES = {
    "security.protocol": "security_protocol",
    "sasl.mechanisms": "sasl_mechanism",
    "sasl.username": "sasl_plain_username",
    "sasl.password": "sasl_plain_password",
    "ssl.ca.location": "ssl_cafile",
    "ssl.certificate.location": "ssl_certfile",
    "ssl.key.location": "ssl_keyfile",
}


def aborted(values):
    """What the aborted transaction writes first: never to be read."""
    return [f"aborted-{value}" for value in values[:10]]


def with_confluent(bootstrap, settings, topic, values):
    from confluent_kafka import Consumer, Producer

    common = dict(settings, **{"bootstrap.servers": bootstrap})
    producer = Producer(dict(common, **{"transactional.id": f"txn-{uuid.uuid4()}"}))
    producer.init_transactions(30)
    for batch, commit in [(aborted(values), False), (values, True)]:
        producer.begin_transaction()
        for value in batch:
            producer.produce(topic, value.encode())
        if commit:
            producer.commit_transaction(30)
        else:
            producer.flush(30)
            producer.abort_transaction(30)
    consumer = Consumer(dict(common, **{
        "group.id": f"group-{uuid.uuid4()}", "auto.offset.reset": "earliest",
        "enable.auto.commit": False, "isolation.level": "read_committed"}))
    consumer.subscribe([topic])
    seen = []
    idle_polls = 0
    while len(seen) < len(values) and idle_polls < 30:
        message = consumer.poll(1)
        if message is None:
            idle_polls += 1
            continue
        if message.error():
            raise RuntimeError(message.error())
        seen.append(message.value().decode())
    consumer.commit(asynchronous=False)
    consumer.close()
    return seen


def with_kafka_python(bootstrap, settings, topic, values):
    from kafka import KafkaConsumer, KafkaProducer

    common = {KAFKA_PYTHON_NAMES[k]: v for k, v in settings.items()}
    if "ssl_cafile" in common:
        # The test CA signs for 127.0.0.1 by IP address only.
        common["ssl_check_hostname"] = False
    producer = KafkaProducer(bootstrap_servers=bootstrap,
                             transactional_id=f"txn-{uuid.uuid4()}", **common)
    producer.init_transactions()
    for batch, commit in [(aborted(values), False), (values, True)]:
        producer.begin_transaction()
        for value in batch:
            producer.send(topic, value.encode())
        producer.flush(30)
        if commit:
            producer.commit_transaction()
        else:
            producer.abort_transaction()
    producer.close()
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"group-{uuid.uuid4()}",
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             isolation_level="read_committed", consumer_timeout_ms=5000,
                             **common)
    seen = [m.value.decode() for m in consumer]
    consumer.commit()
    consumer.close()
    return seen


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--client", choices=["confluent", "kafka-python"], required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    settings = dict(s.split("=", 1) for s in args.set)
    values = [f"{args.client}-{i}" for i in range(100)]
    run = with_confluent if args.client == "confluent" else with_kafka_python
    seen = run(args.bootstrap, settings, args.topic, values)
    if seen != values:
        print(f"consumed {len(seen)} records, expected {len(values)}: {seen[:5]}...",
              file=sys.stderr)
        sys.exit(1)
    print(f"{args.client}: {len(values)} records produced in a transaction after an aborted one, "
          "and consumed read_committed in a group")


if __name__ == "__main__":
    main()
