"""Produces one record with confluent-kafka (librdkafka) logging in with
SASL/OAUTHBEARER, its token made here by `oauth_cb`: an unsecured JWS for
--sub that expires --expires-in seconds from now (negative: already
expired), or --token as given. librdkafka is told the token lasts an hour
whatever it says, so that it sends it and the broker must judge it. Exits
0 once the record is delivered, 1 with the error (an authentication error
ends the attempt at once)."""
import argparse
import base64
import json
import sys
import time

from confluent_kafka import KafkaError, Producer


def unsecured_jws(claims):
    def segment(value):
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()
    return f"{segment({'alg': 'none'})}.{segment(claims)}."


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--sub")
    parser.add_argument("--expires-in", type=int, default=3600)
    parser.add_argument("--token")
    args = parser.parse_args()
    now = int(time.time())
    token = args.token or unsecured_jws({"sub": args.sub, "iat": now - 1, "exp": now + args.expires_in})

    errors = []
    producer = Producer({
        "bootstrap.servers": args.bootstrap,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "OAUTHBEARER",
        "oauth_cb": lambda _config: (token, time.time() + 3600),
        "message.timeout.ms": 15000,
        "error_cb": errors.append,
    })
    delivered = []
    producer.produce(args.topic, b"oauthbearer", on_delivery=lambda e, m: delivered.append(e or m))
    deadline = time.time() + 20
    while not delivered and time.time() < deadline:
        producer.poll(0.2)
        if any(e.code() == KafkaError._AUTHENTICATION for e in errors):
            break
    if delivered and not isinstance(delivered[0], KafkaError):
        print(f"delivered to {args.topic}")
        return
    print(f"not delivered: {delivered} {[str(e) for e in errors]}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
    main()
