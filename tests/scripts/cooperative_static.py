"""Cooperative-sticky rebalancing and static membership (confluent-kafka):
a second member takes only half the partitions while the first keeps the
rest without giving them up, and a static member that restarts within its
session timeout gets its partitions back with no reassignment. Exits
non-zero on any mismatch."""
import argparse
import sys
import time

from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic


def member(bootstrap, instance, revoked):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "coop",
                         "partition.assignment.strategy": "cooperative-sticky",
                         "group.instance.id": instance, "session.timeout.ms": 10000})

    def on_revoke(_consumer, partitions):
        revoked.extend(p.partition for p in partitions)

    consumer.subscribe(["coop"], on_revoke=on_revoke)
    return consumer


def pump(consumers, seconds):
    end = time.time() + seconds
    while time.time() < end:
        for consumer in consumers:
            consumer.poll(0.1)


def owned(consumer):
    return sorted(p.partition for p in consumer.assignment())


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    bootstrap = parser.parse_args().bootstrap
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic("coop", 6, 1)]).values():
        future.result()
    revoked_first = []
    first = member(bootstrap, "one", revoked_first)
    pump([first], 6)
    if owned(first) != list(range(6)):
        print(f"alone, the first member owns {owned(first)}")
        return 1
    revoked_second = []
    second = member(bootstrap, "two", revoked_second)
    pump([first, second], 10)
    a, b = owned(first), owned(second)
    if len(a) != 3 or len(b) != 3 or set(a) & set(b):
        print(f"after the second joined: {a} / {b}")
        return 1
    if sorted(revoked_first) != b:
        print(f"cooperative: the first member gave up {revoked_first}, not just {b}")
        return 1
    # A static member restarting within its session timeout: no LeaveGroup
    # (librdkafka's static members do not send one), same partitions back.
    second.close()
    revoked_first.clear()
    second = member(bootstrap, "two", [])
    pump([first, second], 6)
    if owned(first) != a or owned(second) != b or revoked_first:
        print(f"after the static restart: {owned(first)} / {owned(second)}, revoked {revoked_first}")
        return 1
    first.close()
    second.close()
    print("cooperative and static membership ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
