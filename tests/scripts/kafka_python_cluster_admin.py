"""kafka-python's cluster administration against one broker: log dirs with
partition sizes, active producers, a hanging transaction found and aborted
by an administrator, paged
DescribeTopicPartitions, leader elections and reassignments that have
nothing to do, OffsetForLeaderEpoch through a consumer, SCRAM users and
client quotas that do not exist. Exits non-zero on any mismatch."""
import argparse
import sys

from kafka import KafkaProducer, TopicPartition
from kafka.admin import (AbortTransactionSpec, ConfigResource, ConfigResourceType,
                         KafkaAdminClient, NewTopic, OffsetSpec)
from kafka.errors import (InvalidProducerEpochError, InvalidReplicationAssignmentError,
                          NoReassignmentInProgressError)
from kafka.protocol.admin import DescribeClientQuotasRequest
from kafka.protocol.consumer import IsolationLevel, OffsetForLeaderEpochRequest

failures = []


def check(what, got, expected):
    if got != expected:
        failures.append(f"{what}: got {got!r}, expected {expected!r}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    bootstrap = parser.parse_args().bootstrap
    admin = KafkaAdminClient(bootstrap_servers=bootstrap)
    admin.create_topics([NewTopic("cluster-a", 3, 1), NewTopic("cluster-b", 2, 1)])

    producer = KafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    for i in range(30):
        producer.send("cluster-a", f"value-{i}".encode(), partition=i % 2).get(timeout=30)
    producer.close()

    # Log dirs: partition 2 of cluster-a got nothing, the others grew.
    dirs = admin.describe_log_dirs({"cluster-a": [0, 1, 2, 9]})
    check("log dir brokers", len(dirs), 1)
    log_dirs = dirs[0]["log_dirs"]
    check("log dirs", len(log_dirs), 1)
    check("log dir error", log_dirs[0]["error_code"], 0)
    sizes = {p["partition_index"]: p["partition_size"]
             for t in log_dirs[0]["topics"] for p in t["partitions"]}
    check("sized partitions (the unknown one left out)", sorted(sizes), [0, 1, 2])
    check("empty partition size", sizes.get(2), 0)
    if not (sizes.get(0, 0) > 0 and sizes.get(1, 0) > 0):
        failures.append(f"written partitions have no size: {sizes}")
    if not 0 < log_dirs[0]["usable_bytes"] <= log_dirs[0]["total_bytes"]:
        failures.append(f"volume bytes: {log_dirs[0]}")
    everything = admin.describe_log_dirs()[0]["log_dirs"][0]["topics"]
    check("all topics' log dirs", sorted(t["name"] for t in everything), ["cluster-a", "cluster-b"])

    # Producers: the idempotent producer wrote 15 records to partition 0.
    states = admin.describe_producers([TopicPartition("cluster-a", 0),
                                       TopicPartition("cluster-a", 2)])
    active = states[TopicPartition("cluster-a", 0)].active_producers
    check("producers of partition 0", len(active), 1)
    if active:
        check("last sequence", active[0].last_sequence, 14)
        check("open transaction", active[0].current_transaction_start_offset, -1)
    check("producers of an unwritten partition",
          states[TopicPartition("cluster-a", 2)].active_producers, [])

    hanging_transaction(admin, bootstrap)

    # DescribeTopicPartitions in pages of two partitions.
    page = admin.describe_topic_partitions(["cluster-b", "cluster-a", "missing"],
                                           response_partition_limit=2)
    check("first page", [(t["name"], [p["partition_index"] for p in t["partitions"]])
                         for t in page["topics"]], [("cluster-a", [0, 1])])
    check("first cursor", page["next_cursor"],
          {"topic_name": "cluster-a", "partition_index": 2})
    page = admin.describe_topic_partitions(["cluster-b", "cluster-a", "missing"],
                                           response_partition_limit=2,
                                           cursor=page["next_cursor"])
    check("second page", [(t["name"], [p["partition_index"] for p in t["partitions"]])
                          for t in page["topics"]], [("cluster-a", [2]), ("cluster-b", [0])])
    page = admin.describe_topic_partitions(["cluster-b", "cluster-a", "missing"],
                                           response_partition_limit=2,
                                           cursor=page["next_cursor"])
    check("last page", [(t["name"], t["error_code"]) for t in page["topics"]],
          [("cluster-b", 0), ("missing", 3)])
    check("last cursor", page["next_cursor"], None)

    # Elections and reassignments: nothing to do on one broker.
    election = admin.elect_leaders(0, {"cluster-a": [0], "missing": [0]}, raise_errors=False)
    codes = {(r.topic, p.partition_id): p.error_code
             for r in election.replica_election_results for p in r.partition_result}
    check("election results", codes, {("cluster-a", 0): 84, ("missing", 0): 3})
    check("reassignments in progress", admin.list_partition_reassignments(), {})
    moved = admin.alter_partition_reassignments({
        TopicPartition("cluster-a", 0): [1],
        TopicPartition("cluster-a", 1): [2],
        TopicPartition("cluster-a", 2): None,
    })
    check("reassignments", moved, {
        TopicPartition("cluster-a", 0): None,
        TopicPartition("cluster-a", 1): InvalidReplicationAssignmentError,
        TopicPartition("cluster-a", 2): NoReassignmentInProgressError,
    })

    # Every epoch ends at the log end; no epoch and a future current epoch are refused.
    epochs = send(admin, epoch_request({
        "cluster-a": [(0, -1, 0), (1, 0, 7), (2, -1, -1)],
        "missing": [(0, -1, 0)],
        "cluster-b": [(0, 3, 0)],
    }))
    got = {(t.topic, p.partition): (p.error_code, p.leader_epoch, p.end_offset)
           for t in epochs.topics for p in t.partitions}
    check("epoch end offsets", got, {
        ("cluster-a", 0): (0, 0, 15),
        ("cluster-a", 1): (0, 0, 15),
        ("cluster-a", 2): (0, -1, -1),
        ("missing", 0): (3, -1, -1),
        ("cluster-b", 0): (75, -1, -1),
    })

    check("config resources", admin.list_config_resources(),
          {"topic": ["cluster-a", "cluster-b"], "broker": ["1"]})
    check("topic config resources", admin.list_config_resources(["TOPIC"]),
          {"topic": ["cluster-a", "cluster-b"]})
    check("group config resources", admin.list_config_resources(["GROUP"]), {})

    # The broker's settings under Kafka's names, read-only, all of them.
    configs = admin.describe_configs([ConfigResource(ConfigResourceType.BROKER, "1")],
                                     config_filter="all")["broker"]["1"]
    listeners = configs.get("advertised.listeners", {})
    check("advertised listeners", (listeners.get("value"), listeners.get("config_source"),
                                   listeners.get("read_only")),
          (f"PLAINTEXT://{bootstrap}", "STATIC_BROKER_CONFIG", True))
    check("a topic default under its broker name",
          configs.get("log.retention.ms", {}).get("value"), "604800000")

    check("SCRAM users", admin.describe_user_scram_credentials(), {})
    named = admin.describe_user_scram_credentials(["alice"])
    check("a named SCRAM user", named["alice"]["credential_infos"], [])
    quotas = send(admin, quota_request("user"))
    check("client quotas", (quotas.error_code, quotas.entries), (0, []))
    bad = send(admin, quota_request("planet"))
    check("unknown quota entity", bad.error_code, 42)

    admin.close()
    for failure in failures:
        print(failure)
    return 1 if failures else 0


def hanging_transaction(admin, bootstrap):
    """A transaction left open on cluster-b/1 holds read_committed readers
    back until an administrator aborts it with the producer's id and epoch."""
    tp = TopicPartition("cluster-b", 1)
    producer = KafkaProducer(bootstrap_servers=bootstrap, transactional_id="left-open")
    producer.init_transactions()
    producer.begin_transaction()
    for i in range(3):
        producer.send("cluster-b", f"open-{i}".encode(), partition=1)
    producer.flush()

    def stable_end():
        offsets = admin.list_partition_offsets({tp: OffsetSpec.LATEST},
                                               isolation_level=IsolationLevel.READ_COMMITTED)
        return offsets[tp].offset

    check("stable end with the transaction open", stable_end(), 0)
    active = admin.describe_producers([tp])[tp].active_producers
    check("producers of the open transaction", len(active), 1)
    if not active:
        return
    open_txn = active[0]
    check("open transaction start", open_txn.current_transaction_start_offset, 0)
    spec = AbortTransactionSpec(tp, open_txn.producer_id, open_txn.producer_epoch)
    try:
        admin.abort_transaction(spec._replace(producer_epoch=open_txn.producer_epoch - 1))
        failures.append("an abort with an older epoch was accepted")
    except InvalidProducerEpochError:
        pass
    check("stable end after a refused abort", stable_end(), 0)
    admin.abort_transaction(spec)
    check("stable end after the abort: past the marker", stable_end(), 4)
    after = admin.describe_producers([tp])[tp].active_producers
    check("open transaction after the abort",
          [p.current_transaction_start_offset for p in after], [-1])
    producer.close(timeout=5)


def epoch_request(asked):
    """OffsetForLeaderEpoch for {topic: [(partition, current epoch, epoch)]}."""
    topic, partition = (OffsetForLeaderEpochRequest.OffsetForLeaderTopic,
                        OffsetForLeaderEpochRequest.OffsetForLeaderTopic.OffsetForLeaderPartition)
    return OffsetForLeaderEpochRequest(replica_id=-1, topics=[
        topic(topic=name, partitions=[
            partition(partition=p, current_leader_epoch=current, leader_epoch=epoch)
            for p, current, epoch in partitions])
        for name, partitions in asked.items()])


def quota_request(entity_type):
    """DescribeClientQuotas for every entity of `entity_type`."""
    component = DescribeClientQuotasRequest.ComponentData
    return DescribeClientQuotasRequest(
        components=[component(entity_type=entity_type, match_type=1, match=None)], strict=False)


def send(admin, request):
    """A raw request on the admin client's connection to the broker."""
    return admin._manager.run(admin._manager.send, request)


if __name__ == "__main__":
    sys.exit(main())
