"""Dynamic broker configs (KIP-226) through confluent-kafka's AdminClient,
against broker 1. Both confluent-kafka and kafka-python refuse the empty
resource name of the cluster default, so what names it goes as a raw
kafka-python request, which also shows the synonyms in order.

--phase set: produces hour-old records to a topic with small segments and
sees them kept (retention is a week), then sets log.retention.ms on the
cluster default with IncrementalAlterConfigs and sees the old segments go.
Checks DescribeConfigs of the broker and of the topic (value and source),
that a static key (node.id) is refused for its broker resource while a
topic resource of the same request is altered, that APPEND on a non-list
key and an unknown broker id are refused, that validate_only changes
nothing, and sets a per-broker value over the default.

--phase check (after a restart): both dynamic values are still in force.

Exits non-zero on any mismatch."""
import argparse
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition
from confluent_kafka.admin import (AdminClient, AlterConfigOpType, ConfigEntry,
                                   ConfigResource, ConfigSource, NewTopic,
                                   ResourceType)
from kafka.admin import KafkaAdminClient
from kafka.protocol.admin import DescribeConfigsRequest, IncrementalAlterConfigsRequest

TOPIC = "aged"
HOUR_MS = 3_600_000
# Kafka's resource types and error codes, for the raw requests.
BROKER, RAW_TOPIC = 4, 2
INVALID_CONFIG, INVALID_REQUEST = 40, 42


def check(what, got, want):
    if got != want:
        sys.exit(f"{what}: got {got!r}, want {want!r}")
    print(f"ok: {what}")


def incremental(admin, resources, validate_only=False):
    """Per resource name, None or the error's name."""
    futures = admin.incremental_alter_configs(resources, validate_only=validate_only,
                                              request_timeout=10)
    outcome = {}
    for resource, future in futures.items():
        try:
            future.result(10)
            outcome[resource.name] = None
        except KafkaException as e:
            outcome[resource.name] = e.args[0].name()
    return outcome


def raw_incremental(raw, resources, validate_only=False, node=None):
    """IncrementalAlterConfigs of (type, name, [(key, op, value)]) to
    `node` (any broker if None); per resource name its error code."""
    resource = IncrementalAlterConfigsRequest.AlterConfigsResource
    request = IncrementalAlterConfigsRequest(resources=[
        resource(resource_type=kind, resource_name=name, configs=[
            resource.AlterableConfig(name=key, config_operation=op, value=value)
            for key, op, value in configs])
        for kind, name, configs in resources], validate_only=validate_only)
    response = raw._manager.run(raw._manager.send, request, node)
    return {r.resource_name: r.error_code for r in response.responses}


def raw_describe(raw, name, node=None):
    """DescribeConfigs of a broker resource with synonyms, asked of `node`
    (any broker if None): per key, its value, source, and its synonyms'
    (value, source) in order."""
    resource = DescribeConfigsRequest.DescribeConfigsResource
    request = DescribeConfigsRequest(
        resources=[resource(resource_type=BROKER, resource_name=name,
                            configuration_keys=None)],
        include_synonyms=True, include_documentation=False)
    result = raw._manager.run(raw._manager.send, request, node).results[0]
    if result.error_code:
        sys.exit(f"describing broker '{name}': error {result.error_code}")
    return {c.name: (c.value, c.config_source,
                     [(s.value, s.source) for s in c.synonyms])
            for c in result.configs}


def setting(name, value, op=AlterConfigOpType.SET):
    return ConfigEntry(name, value, incremental_operation=op)


def described(admin, restype, name):
    resource = ConfigResource(restype, name)
    return admin.describe_configs([resource], request_timeout=10)[resource].result(10)


def value_and_source(admin, restype, name, key):
    entry = described(admin, restype, name)[key]
    return entry.value, ConfigSource(entry.source)


def low_watermark(bootstrap):
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermarks"})
    try:
        low, _ = consumer.get_watermark_offsets(TopicPartition(TOPIC, 0), timeout=10)
        return low
    finally:
        consumer.close()


def set_phase(bootstrap, admin, raw):
    topic = NewTopic(TOPIC, 1, 1, config={"segment.bytes": "1024"})
    for future in admin.create_topics([topic]).values():
        future.result(10)
    producer = Producer({"bootstrap.servers": bootstrap})
    old = int(time.time() * 1000) - HOUR_MS
    # One batch each, so that they fill several segments.
    for i in range(30):
        producer.produce(TOPIC, value=b"x" * 200, key=str(i).encode(), timestamp=old)
        check(f"record {i} delivered", producer.flush(10), 0)
    time.sleep(1)
    check("hour-old records kept under the week-long default", low_watermark(bootstrap), 0)

    # A dynamic default and a topic override in one request.
    check("a cluster default and a topic config altered together",
          raw_incremental(raw, [
              (BROKER, "", [("log.retention.ms", 0, "60000")]),
              (RAW_TOPIC, TOPIC, [("retention.bytes", 0, "1000000")]),
          ]), {"": 0, TOPIC: 0})
    deadline = time.time() + 15
    while low_watermark(bootstrap) == 0 and time.time() < deadline:
        time.sleep(0.5)
    low = low_watermark(bootstrap)
    if low == 0:
        sys.exit("retention did not follow the dynamic log.retention.ms")
    print(f"ok: retention applied the dynamic default, log start now {low}")

    check("the broker shows the dynamic default",
          value_and_source(admin, ResourceType.BROKER, "1", "log.retention.ms"),
          ("60000", ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG))
    check("the default resource lists what is set on it",
          raw_describe(raw, ""), {"log.retention.ms": ("60000", 3, [("60000", 3)])})
    check("a dynamic key is not read-only",
          described(admin, ResourceType.BROKER, "1")["log.retention.ms"].is_read_only, False)
    check("a static key is read-only",
          described(admin, ResourceType.BROKER, "1")["node.id"].is_read_only, True)
    check("the topic inherits the dynamic default",
          value_and_source(admin, ResourceType.TOPIC, TOPIC, "retention.ms"),
          ("60000", ConfigSource.DYNAMIC_DEFAULT_BROKER_CONFIG))

    # A static key fails its resource only.
    check("a static key refused, the topic of the same request altered",
          incremental(admin, [
              ConfigResource(ResourceType.BROKER, "1",
                             incremental_configs=[setting("node.id", "7")]),
              ConfigResource(ResourceType.TOPIC, TOPIC,
                             incremental_configs=[setting("segment.ms", "3600000")]),
          ]), {"1": "INVALID_REQUEST", TOPIC: None})
    check("the topic change of that request is in force",
          value_and_source(admin, ResourceType.TOPIC, TOPIC, "segment.ms"),
          ("3600000", ConfigSource.DYNAMIC_TOPIC_CONFIG))
    check("append to a non-list key",
          incremental(admin, [ConfigResource(
              ResourceType.BROKER, "1",
              incremental_configs=[setting("log.retention.ms", "1",
                                           AlterConfigOpType.APPEND)])]),
          {"1": "INVALID_REQUEST"})
    check("an invalid value",
          raw_incremental(raw, [(BROKER, "", [("log.retention.ms", 0, "soon")])]),
          {"": INVALID_CONFIG})
    check("an unknown key",
          raw_incremental(raw, [(BROKER, "", [("no.such.key", 0, "1")])]),
          {"": INVALID_CONFIG})
    check("a broker that is not there",
          raw_incremental(raw, [(BROKER, "7", [("log.retention.ms", 0, "1")])]),
          {"7": INVALID_REQUEST})
    check("validate_only accepted",
          raw_incremental(raw, [(BROKER, "", [("log.retention.bytes", 0, "123")])],
                          validate_only=True), {"": 0})
    check("validate_only changed nothing",
          value_and_source(admin, ResourceType.BROKER, "1", "log.retention.bytes"),
          ("-1", ConfigSource.DEFAULT_CONFIG))

    # This broker's own value wins over the default.
    check("a per-broker value",
          incremental(admin, [ConfigResource(
              ResourceType.BROKER, "1",
              incremental_configs=[setting("log.retention.ms", "30000")])]),
          {"1": None})
    check_persisted(admin, raw)


def check_persisted(admin, raw):
    check("the broker's own value",
          value_and_source(admin, ResourceType.BROKER, "1", "log.retention.ms"),
          ("30000", ConfigSource.DYNAMIC_BROKER_CONFIG))
    check("every level in order",
          raw_describe(raw, "1")["log.retention.ms"],
          ("30000", 2, [("30000", 2), ("60000", 3), ("604800000", 5)]))
    check("the default under it", raw_describe(raw, "")["log.retention.ms"][:2], ("60000", 3))
    check("the topic follows the broker's own value",
          value_and_source(admin, ResourceType.TOPIC, TOPIC, "retention.ms"),
          ("30000", ConfigSource.DYNAMIC_BROKER_CONFIG))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--phase", choices=["set", "check"], required=True)
    args = parser.parse_args()
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    raw = KafkaAdminClient(bootstrap_servers=args.bootstrap)
    if args.phase == "set":
        set_phase(args.bootstrap, admin, raw)
    else:
        check_persisted(admin, raw)
    raw.close()


if __name__ == "__main__":
    main()
