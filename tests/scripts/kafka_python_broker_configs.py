"""One dynamic broker config request, sent with kafka-python to one broker
of a cluster (the admin APIs of kafka-python and confluent-kafka refuse the
empty name of the cluster default, so it goes raw):

  set RESOURCE KEY VALUE   IncrementalAlterConfigs SET; fails unless it is
                           accepted
  describe RESOURCE KEY    prints the value in force and its source id

RESOURCE is a broker id, or "" for the cluster default."""
import argparse
import sys

from kafka.admin import KafkaAdminClient

from confluent_broker_configs import BROKER, raw_describe, raw_incremental


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--node", type=int, required=True, help="the broker asked")
    parser.add_argument("command", choices=["set", "describe"])
    parser.add_argument("resource")
    parser.add_argument("key")
    parser.add_argument("value", nargs="?")
    args = parser.parse_args()
    raw = KafkaAdminClient(bootstrap_servers=args.bootstrap)
    try:
        if args.command == "set":
            errors = raw_incremental(
                raw, [(BROKER, args.resource, [(args.key, 0, args.value)])], node=args.node)
            if errors != {args.resource: 0}:
                sys.exit(f"refused: {errors}")
        else:
            value, source, _ = raw_describe(raw, args.resource, node=args.node)[args.key]
            print(value, source)
    finally:
        raw.close()


if __name__ == "__main__":
    main()
