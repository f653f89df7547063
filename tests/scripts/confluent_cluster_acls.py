"""ACLs and SCRAM users in a cluster, with confluent-kafka: alice
(SASL/PLAIN) may not write topic `guarded` until an administrator, through
one broker, allows her; then she writes to every partition, so to every
leader, and another broker lists the ACLs. A SCRAM user the administrator
adds through one broker logs in on another. With --granted, only checks
that both still hold (after a broker restarted). Exits non-zero on any
mismatch."""
import argparse
import sys
import time

from confluent_kafka import Producer
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation,
                                   AclPermissionType, AdminClient,
                                   ResourcePatternType, ResourceType,
                                   ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialUpsertion)

TOPIC = "guarded"
PARTITIONS = 3
ACLS = [AclBinding(ResourceType.TOPIC, TOPIC, ResourcePatternType.LITERAL,
                   "User:alice", "*", operation, AclPermissionType.ALLOW)
        for operation in (AclOperation.WRITE, AclOperation.DESCRIBE)]


def sasl(bootstrap, user, password):
    return {"bootstrap.servers": bootstrap, "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "PLAIN", "sasl.username": user, "sasl.password": password}


def alice_writes(bootstrap):
    """The error of each partition's write as alice (None if written)."""
    producer = Producer({**sasl(bootstrap, "alice", "alice-secret"),
                         "message.timeout.ms": 10000, "retries": 0})
    errors = {}

    def report(error, message):
        errors[message.partition()] = error

    for partition in range(PARTITIONS):
        producer.produce(TOPIC, b"x", partition=partition, on_delivery=report)
    producer.flush(20)
    return [errors.get(p) for p in range(PARTITIONS)]


def allowed(bootstrap, within):
    """Whether every partition takes alice's write within `within` s."""
    deadline = time.time() + within
    while True:
        errors = alice_writes(bootstrap)
        if all(e is None for e in errors):
            return True
        if time.time() > deadline:
            print(f"alice's writes: {errors}", file=sys.stderr)
            return False
        time.sleep(0.5)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--sasl", nargs=3, required=True,
                        help="the SASL listener of each of the three brokers")
    parser.add_argument("--granted", action="store_true")
    args = parser.parse_args()
    if args.granted:
        if not allowed(args.sasl[1], 30):
            sys.exit("alice may no longer write after the restart")
        check_listed(args.sasl[1], ACLS)
        carol_logs_in(args.sasl[1])
        return
    errors = alice_writes(args.sasl[1])
    if not all(e is not None and "TOPIC_AUTHORIZATION_FAILED" in str(e) for e in errors):
        sys.exit(f"alice wrote without an ACL: {errors}")
    admin = AdminClient(sasl(args.sasl[0], "admin", "admin-secret"))
    for future in admin.create_acls(ACLS).values():
        future.result(10)
    if not allowed(args.sasl[1], 30):
        sys.exit("an ACL created through broker 1 is not enforced everywhere")
    check_listed(args.sasl[2], ACLS)
    upsert = UserScramCredentialUpsertion(
        "carol", ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096), b"carol-secret")
    for future in admin.alter_user_scram_credentials([upsert]).values():
        future.result(10)
    carol_logs_in(args.sasl[2])


def carol_logs_in(bootstrap):
    carol = AdminClient({"bootstrap.servers": bootstrap, "security.protocol": "SASL_PLAINTEXT",
                         "sasl.mechanism": "SCRAM-SHA-256", "sasl.username": "carol",
                         "sasl.password": "carol-secret"})
    try:
        carol.list_topics(timeout=10)
    except Exception as e:
        sys.exit(f"carol, added through broker 1, cannot log in at {bootstrap}: {e}")


def check_listed(bootstrap, expected):
    admin = AdminClient(sasl(bootstrap, "admin", "admin-secret"))
    found = admin.describe_acls(AclBindingFilter(
        ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
        AclOperation.ANY, AclPermissionType.ANY)).result(10)
    if sorted(str(a) for a in found) != sorted(str(a) for a in expected):
        sys.exit(f"{bootstrap} lists {found}, expected {expected}")


if __name__ == "__main__":
    main()
