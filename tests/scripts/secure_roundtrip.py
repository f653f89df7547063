"""Produces records and consumes them back in a consumer group over a
secured listener, with confluent-kafka (librdkafka) or kafka-python.
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


def with_confluent(bootstrap, settings, topic, values):
    from confluent_kafka import Consumer, Producer

    common = dict(settings, **{"bootstrap.servers": bootstrap})
    producer = Producer(dict(common, **{"acks": "all"}))
    for value in values:
        producer.produce(topic, value.encode())
    if producer.flush(30) != 0:
        raise RuntimeError("records left unsent")
    consumer = Consumer(dict(common, **{
        "group.id": f"group-{uuid.uuid4()}", "auto.offset.reset": "earliest",
        "enable.auto.commit": False}))
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
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all", **common)
    for value in values:
        producer.send(topic, value.encode())
    producer.flush(30)
    producer.close()
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=f"group-{uuid.uuid4()}",
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             consumer_timeout_ms=5000, **common)
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
    print(f"{args.client}: {len(values)} records produced and consumed in a group")


if __name__ == "__main__":
    main()
