"""Round trip through kafka-python: admin create, idempotent keyed produce,
a consumer group that commits, a second member of the same group that
resumes after the commit, and ACL requests answered as by a Kafka broker
without an authorizer. Exits non-zero on any mismatch."""
import argparse
import sys

from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import (ACLFilter, ACLOperation, ACLPermissionType, ACLResourcePatternType,
                         KafkaAdminClient, NewTopic, ResourcePatternFilter, ResourceType)
from kafka.errors import SecurityDisabledError


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    bootstrap = parser.parse_args().bootstrap
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic("kafka-python", 3, 1)])
    producer = KafkaProducer(bootstrap_servers=bootstrap, acks="all")
    sent = {}
    for i in range(1000):
        meta = producer.send("kafka-python", key=f"k{i}".encode(), value=f"v{i}".encode()).get(timeout=30)
        sent[(meta.partition, meta.offset)] = f"v{i}"
    producer.close()

    consumer = KafkaConsumer("kafka-python", bootstrap_servers=bootstrap, group_id="kp",
                             auto_offset_reset="earliest", enable_auto_commit=False,
                             consumer_timeout_ms=5000)
    got = {(m.partition, m.offset): m.value.decode() for m in consumer}
    consumer.commit()
    consumer.close()
    if got != sent:
        print(f"consumed {len(got)} records, expected {len(sent)}; differences: "
              f"{sorted(set(got.items()) ^ set(sent.items()))[:5]}")
        return 1

    producer = KafkaProducer(bootstrap_servers=bootstrap)
    producer.send("kafka-python", key=b"late", value=b"after-commit").get(timeout=30)
    producer.close()
    consumer = KafkaConsumer("kafka-python", bootstrap_servers=bootstrap, group_id="kp",
                             auto_offset_reset="earliest", consumer_timeout_ms=5000)
    resumed = [m.value.decode() for m in consumer]
    consumer.close()
    if resumed != ["after-commit"]:
        print(f"after the commit the group read {resumed[:5]}... ({len(resumed)} records)")
        return 1
    # No authorizer: ACL requests get SECURITY_DISABLED, as from Kafka.
    acl_filter = ACLFilter(principal=None, host=None, operation=ACLOperation.ANY,
                           permission_type=ACLPermissionType.ANY,
                           resource_pattern=ResourcePatternFilter(
                               ResourceType.ANY, None, ACLResourcePatternType.ANY))
    try:
        admin.describe_acls(acl_filter)
        print("describe_acls succeeded on a broker without an authorizer")
        return 1
    except SecurityDisabledError:
        pass
    print("kafka-python round trip ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
