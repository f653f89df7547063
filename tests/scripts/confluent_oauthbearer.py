"""Produces with confluent-kafka (librdkafka) logging in with
SASL/OAUTHBEARER, its tokens made here by `oauth_cb`: unsecured JWSs for
--sub that expire --expires-in seconds after they are made (negative:
already expired), or --token as given. librdkafka is told a token's real
expiry, so that it makes a new one in time and re-authenticates with it
(KIP-368), or an hour for one already expired or not a JWS, so that it
sends it and the broker must judge it.

One record, or one every 0.2 s for --for-seconds. Exits 0 once all are
delivered without a client error, printing how many tokens were made; 1
with the errors (an authentication error ends the attempt at once)."""
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
    parser.add_argument("--for-seconds", type=float, default=0)
    args = parser.parse_args()

    tokens = []

    def make_token(_config):
        now = time.time()
        if args.token:
            tokens.append(args.token)
            return args.token, now + 3600
        # NumericDates may be fractional: a token lasts its whole lifetime.
        exp = now + args.expires_in
        tokens.append(unsecured_jws({"sub": args.sub, "iat": now, "exp": exp}))
        return tokens[-1], exp if exp > now else now + 3600

    errors = []
    producer = Producer({
        "bootstrap.servers": args.bootstrap,
        "security.protocol": "SASL_PLAINTEXT",
        "sasl.mechanism": "OAUTHBEARER",
        "oauth_cb": make_token,
        "message.timeout.ms": 15000,
        "error_cb": errors.append,
    })
    delivered = []
    started = time.time()
    sent = 0
    while not errors:
        if sent == 0 or time.time() - started < args.for_seconds:
            producer.produce(args.topic, b"oauthbearer", on_delivery=lambda e, m: delivered.append(e or m))
            sent += 1
        elif len(delivered) >= sent or time.time() - started > args.for_seconds + 20:
            break
        pause = time.time() + 0.2
        while time.time() < pause and not errors:
            producer.poll(0.05)
    failed = [d for d in delivered if isinstance(d, KafkaError)]
    if len(delivered) == sent and not failed and not errors:
        print(f"{sent} records delivered to {args.topic}, tokens made: {len(tokens)}")
        return
    print(f"{len(delivered)} of {sent} delivered: {failed} {[str(e) for e in errors]}", file=sys.stderr)
    sys.exit(1)


if __name__ == "__main__":
    main()
