"""Incremental rebalancing and static membership (confluent-kafka): a
second member takes only half the partitions while the first keeps the rest
without giving them up, a static member that restarts within its session
timeout gets its partitions back with no reassignment, and a member whose
process is killed is expelled after its session timeout, its partitions
going to the others, and OffsetDelete refuses the topic the members read. Runs under the classic protocol with cooperative-sticky
or, with --protocol consumer, under KIP-848 where the broker assigns. Exits
non-zero on any mismatch."""
import argparse
import os
import signal
import subprocess
import sys
import time

from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaAdminClient, TopicPartition as KafkaTopicPartition
from kafka.errors import GroupSubscribedToTopicError


def member(bootstrap, protocol, instance, revoked):
    settings = {"bootstrap.servers": bootstrap, "group.id": f"coop-{protocol}"}
    if instance:
        settings["group.instance.id"] = instance
    if protocol == "consumer":
        settings["group.protocol"] = "consumer"
    else:
        settings.update({"partition.assignment.strategy": "cooperative-sticky",
                         "session.timeout.ms": 10000})
    consumer = Consumer(settings)

    def on_revoke(_consumer, partitions):
        revoked.extend(p.partition for p in partitions)

    consumer.subscribe([f"coop-{protocol}"], on_revoke=on_revoke)
    return consumer


def pump(consumers, seconds):
    end = time.time() + seconds
    while time.time() < end:
        for consumer in consumers:
            consumer.poll(0.1)


def owned(consumer):
    return sorted(p.partition for p in consumer.assignment())


def doomed_member(bootstrap, protocol):
    """A dynamic member in a child process, polling until it is killed."""
    return subprocess.Popen([sys.executable, __file__, "--bootstrap", bootstrap,
                             "--protocol", protocol, "--doomed"])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--protocol", choices=["classic", "consumer"], default="classic")
    parser.add_argument("--doomed", action="store_true")
    args = parser.parse_args()
    bootstrap, protocol = args.bootstrap, args.protocol
    if args.doomed:
        pump([member(bootstrap, protocol, None, [])], 600)
        return 0
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(f"coop-{protocol}", 6, 1)]).values():
        future.result()
    revoked_first = []
    first = member(bootstrap, protocol, "one", revoked_first)
    pump([first], 6)
    if owned(first) != list(range(6)):
        print(f"alone, the first member owns {owned(first)}")
        return 1
    revoked_second = []
    second = member(bootstrap, protocol, "two", revoked_second)
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
    second = member(bootstrap, protocol, "two", [])
    pump([first, second], 6)
    if owned(first) != a or owned(second) != b or revoked_first:
        print(f"after the static restart: {owned(first)} / {owned(second)}, revoked {revoked_first}")
        return 1
    # A third member joins in its own process and is killed: no goodbye,
    # so only the session timeout frees its partitions.
    doomed = doomed_member(bootstrap, protocol)
    deadline = time.time() + 60
    while len(owned(first)) + len(owned(second)) != 4 and time.time() < deadline:
        pump([first, second], 0.5)
    if len(owned(first)) + len(owned(second)) != 4:
        doomed.kill()
        print(f"the third member never got its share: {owned(first)} / {owned(second)}")
        return 1
    os.kill(doomed.pid, signal.SIGKILL)
    doomed.wait()
    deadline = time.time() + 60
    while sorted(owned(first) + owned(second)) != list(range(6)) and time.time() < deadline:
        pump([first, second], 0.5)
    if sorted(owned(first) + owned(second)) != list(range(6)):
        print(f"the killed member's partitions stayed away: {owned(first)} / {owned(second)}")
        return 1
    # OffsetDelete (kafka-python) refuses the topic live members read.
    topic = f"coop-{protocol}"
    results = KafkaAdminClient(bootstrap_servers=bootstrap).delete_group_offsets(
        topic, [KafkaTopicPartition(topic, 0)])
    if list(results.values()) != [GroupSubscribedToTopicError]:
        print(f"deleting the offsets of a subscribed topic: {results}")
        return 1
    first.close()
    second.close()
    print(f"{protocol}: incremental rebalancing, static membership and expiry ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
