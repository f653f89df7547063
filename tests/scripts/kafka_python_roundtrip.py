"""Round trip through kafka-python: admin create, idempotent keyed produce,
a consumer group that commits, a second member of the same group that
resumes after the commit, and ACLs created, matched, listed and deleted.
Exits non-zero on any mismatch."""
import argparse
import sys

from kafka import KafkaConsumer, KafkaProducer
from kafka.admin import (ACL, ACLFilter, ACLOperation, ACLPermissionType,
                         ACLResourcePatternType, KafkaAdminClient, NewTopic, ResourcePattern,
                         ResourcePatternFilter, ResourceType)


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
    failure = acls(admin)
    if failure:
        print(failure)
        return 1
    print("kafka-python round trip ok")
    return 0


def acls(admin):
    """ACLs as an authorizer keeps them; a description of what is wrong."""
    def acl(principal, operation, pattern):
        return ACL(principal=principal, host="*", operation=operation,
                   permission_type=ACLPermissionType.ALLOW, resource_pattern=pattern)

    orders = ResourcePattern(ResourceType.TOPIC, "orders", ACLResourcePatternType.LITERAL)
    billing = ResourcePattern(ResourceType.GROUP, "billing-", ACLResourcePatternType.PREFIXED)
    made = admin.create_acls([acl("User:alice", ACLOperation.READ, orders),
                              acl("User:bob", ACLOperation.READ, billing),
                              acl("alice", ACLOperation.READ, orders)])
    if (len(made["succeeded"]), len(made["failed"])) != (2, 1):
        return f"create_acls: {made}"

    def listed(resource_type, name, pattern_type, principal=None):
        found, error = admin.describe_acls(ACLFilter(
            principal=principal, host=None, operation=ACLOperation.ANY,
            permission_type=ACLPermissionType.ANY,
            resource_pattern=ResourcePatternFilter(resource_type, name, pattern_type)))
        return sorted(a.principal for a in found) if error.errno == 0 else error

    everything = listed(ResourceType.ANY, None, ACLResourcePatternType.ANY)
    applying = listed(ResourceType.GROUP, "billing-eu", ACLResourcePatternType.MATCH)
    if (everything, applying) != (["User:alice", "User:bob"], ["User:bob"]):
        return f"describe_acls: all {everything}, for group billing-eu {applying}"
    admin.delete_acls([ACLFilter(principal="User:alice", host=None, operation=ACLOperation.ANY,
                                 permission_type=ACLPermissionType.ANY,
                                 resource_pattern=ResourcePatternFilter(
                                     ResourceType.ANY, None, ACLResourcePatternType.ANY))])
    left = listed(ResourceType.ANY, None, ACLResourcePatternType.ANY)
    if left != ["User:bob"]:
        return f"after deleting alice's ACLs: {left}"
    return None


if __name__ == "__main__":
    sys.exit(main())
