"""Prints kafka-python's describe_metadata_quorum() (DescribeQuorum) as
JSON: the leader, epoch, high watermark, voters, observers and nodes of
the controller quorum, for the test to check."""
import json
import sys

from kafka import KafkaAdminClient

admin = KafkaAdminClient(bootstrap_servers=sys.argv[1])
quorum = admin.describe_metadata_quorum()
admin.close()
partition = quorum["topics"][0]["partitions"][0]
print(json.dumps({
    "error": partition["error"],
    "leader": partition["leader_id"],
    "epoch": partition["leader_epoch"],
    "high_watermark": partition["high_watermark"],
    "voters": sorted(v["replica_id"] for v in partition["current_voters"]),
    "voter_ends": sorted(v["log_end_offset"] for v in partition["current_voters"]),
    "observers": sorted(o["replica_id"] for o in partition["observers"]),
    "observer_ends": sorted(o["log_end_offset"] for o in partition["observers"]),
    "nodes": sorted(n["node_id"] for n in quorum.get("nodes", [])),
}))
