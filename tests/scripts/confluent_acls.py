"""An administrator sets up ACLs with confluent-kafka's AdminClient over
SASL_PLAINTEXT (PLAIN), as the README shows: topics `orders` and
`secret`, alice may write and read `orders` and read group `billing`, bob
may read `orders` and describe (not read) group `billing`. Then checks
that DescribeAcls lists what was created and that bob, who may not alter
the cluster, can neither create ACLs nor SCRAM users, which the
administrator can, and that bob may not create, delete or describe the
configs of topics without the ACLs for it, nor alter a broker's configs,
which the administrator can. Exits non-zero on any mismatch."""
import argparse
import sys

from confluent_kafka import KafkaException
from confluent_kafka.admin import AlterConfigOpType, ConfigEntry, ConfigResource
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation,
                                   AclPermissionType, AdminClient, NewTopic,
                                   ResourcePatternType, ResourceType,
                                   ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialUpsertion)


def admin_as(bootstrap, user, password):
    return AdminClient({"bootstrap.servers": bootstrap,
                        "security.protocol": "SASL_PLAINTEXT",
                        "sasl.mechanism": "PLAIN",
                        "sasl.username": user, "sasl.password": password})


def expect_refused(futures, what, error="CLUSTER_AUTHORIZATION_FAILED"):
    try:
        for future in futures.values():
            future.result(10)
        sys.exit(f"bob {what} without the ACL for it")
    except KafkaException as e:
        if error not in str(e):
            sys.exit(f"bob {what}: failed otherwise than {error}: {e}")


def allow(resource, name, principal, operation):
    return AclBinding(resource, name, ResourcePatternType.LITERAL, principal,
                      "*", operation, AclPermissionType.ALLOW)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    bootstrap = parser.parse_args().bootstrap
    admin = admin_as(bootstrap, "admin", "admin-secret")
    for future in admin.create_topics(
            [NewTopic("orders", 1, 1), NewTopic("secret", 1, 1)]).values():
        future.result(10)
    acls = [
        allow(ResourceType.TOPIC, "orders", "User:alice", AclOperation.WRITE),
        allow(ResourceType.TOPIC, "orders", "User:alice", AclOperation.READ),
        allow(ResourceType.GROUP, "billing", "User:alice", AclOperation.READ),
        allow(ResourceType.TOPIC, "orders", "User:bob", AclOperation.READ),
        allow(ResourceType.GROUP, "billing", "User:bob", AclOperation.DESCRIBE),
    ]
    for future in admin.create_acls(acls).values():
        future.result(10)
    listed = admin.describe_acls(AclBindingFilter(
        ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
        AclOperation.ANY, AclPermissionType.ANY)).result(10)
    if sorted(map(str, listed)) != sorted(map(str, acls)):
        sys.exit(f"DescribeAcls lists {listed}, not {acls}")
    bob = admin_as(bootstrap, "bob", "bob-secret")
    denied = allow(ResourceType.TOPIC, "secret", "User:bob", AclOperation.ALL)
    expect_refused(bob.create_acls([denied]), "created an ACL")
    carol = [UserScramCredentialUpsertion(
        "carol", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), b"carol-secret")]
    expect_refused(bob.alter_user_scram_credentials(carol), "added a SCRAM user")
    for future in admin.alter_user_scram_credentials(carol).values():
        future.result(10)
    topic_refused = "TOPIC_AUTHORIZATION_FAILED"
    expect_refused(bob.create_topics([NewTopic("bobs", 1, 1)]), "created a topic",
                   topic_refused)
    expect_refused(bob.delete_topics(["orders"]), "deleted a topic", topic_refused)
    expect_refused(bob.describe_configs([ConfigResource("topic", "secret")]),
                   "described a topic's configs", topic_refused)
    # Dynamic broker configs need ALTER_CONFIGS on the cluster.
    retention = [ConfigEntry("log.retention.ms", "60000",
                             incremental_operation=AlterConfigOpType.SET)]
    expect_refused(bob.incremental_alter_configs(
        [ConfigResource("broker", "1", incremental_configs=retention)]),
        "altered a broker's configs")
    for future in admin.incremental_alter_configs(
            [ConfigResource("broker", "1", incremental_configs=retention)]).values():
        future.result(10)
    print("ok")


if __name__ == "__main__":
    main()
