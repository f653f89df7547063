"""kafka-python moves a partition between brokers of a cluster, as an
operator does with kafka-reassign-partitions: a one-replica topic on broker
--from is written, reassigned to the --to brokers, and the script waits until
ListPartitionReassignments shows nothing in progress and the metadata names
only the new replicas, all in sync. Bad requests are refused per partition.
Exits non-zero on any mismatch; prints the number of records written."""
import argparse
import sys
import time

from kafka import KafkaAdminClient, KafkaProducer, TopicPartition
from kafka.admin import NewTopic
from kafka.errors import (InvalidReplicationAssignmentError, NoReassignmentInProgressError,
                          UnknownTopicOrPartitionError)

RECORDS = 5000
failures = []


def check(what, got, expected):
    if got != expected:
        failures.append(f"{what}: got {got!r}, expected {expected!r}")


def partition_state(admin, topic):
    """(replicas, isr) of partition 0 as the metadata shows them."""
    described = admin.describe_topics([topic])[0]
    p = next(p for p in described["partitions"] if p["partition_index"] == 0)
    return sorted(p["replica_nodes"]), sorted(p["isr_nodes"])


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--from", dest="source", type=int, required=True)
    parser.add_argument("--to", type=int, nargs="+", required=True)
    args = parser.parse_args()
    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap)
    admin.create_topics([NewTopic(args.topic, replica_assignments={0: [args.source]})])
    deadline = time.time() + 30
    while partition_state(admin, args.topic)[0] != [args.source]:
        if time.time() > deadline:
            sys.exit(f"{args.topic} never showed replica {args.source}")
        time.sleep(0.2)

    producer = KafkaProducer(bootstrap_servers=args.bootstrap, acks="all", linger_ms=5)
    sent = [producer.send(args.topic, str(i).encode(), partition=0) for i in range(RECORDS)]
    producer.flush()
    for future in sent:
        future.get(timeout=30)
    producer.close()

    partition = TopicPartition(args.topic, 0)
    refused = admin.alter_partition_reassignments({
        partition: [args.to[0], 99],
        TopicPartition(args.topic, 7): args.to,
    })
    check("refused reassignments", refused, {
        partition: InvalidReplicationAssignmentError,
        TopicPartition(args.topic, 7): UnknownTopicOrPartitionError,
    })
    check("cancel with none in progress",
          admin.alter_partition_reassignments({partition: None}),
          {partition: NoReassignmentInProgressError})

    check("reassignment accepted", admin.alter_partition_reassignments({partition: args.to}),
          {partition: None})
    deadline = time.time() + 60
    while True:
        ongoing = admin.list_partition_reassignments()
        if partition in ongoing:
            state = ongoing[partition]
            check("adding replicas", sorted(state["adding_replicas"]), sorted(args.to))
            check("removing replicas", state["removing_replicas"], [args.source])
        elif partition_state(admin, args.topic) == (sorted(args.to), sorted(args.to)):
            break
        if time.time() > deadline:
            failures.append(f"reassignment did not finish: {ongoing}, "
                            f"{partition_state(admin, args.topic)}")
            break
        time.sleep(0.2)
    admin.close()
    if failures:
        sys.exit("\n".join(failures))
    print(RECORDS)


if __name__ == "__main__":
    main()
