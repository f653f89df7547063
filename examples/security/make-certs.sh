#!/usr/bin/env bash
# Makes a throw-away certificate authority and, signed by it, a broker
# certificate (for localhost and 127.0.0.1) and a client certificate
# (CN=client,OU=demo), in the current folder, with openssl. The broker
# certificate also serves as the client side of connections between the
# brokers of a cluster (mutual TLS). For trying
# TLS out, never for production: the keys are not protected.
#
#   ca.pem                       the CA certificate (ssl_ca_file; clients' ssl.ca.location)
#   broker.pem, broker-key.pem   ssl_cert_file, ssl_key_file
#   client.pem, client-key.pem   a client certificate and its key
set -euo pipefail

days=30
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

key ca-key.pem
openssl req -x509 -new -key ca-key.pem -out ca.pem -days "$days" -subj "/CN=actorlog demo CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"

# $1: file prefix, $2: subject, $3: extensions of the signed certificate.
sign() {
  key "$1-key.pem"
  openssl req -new -key "$1-key.pem" -subj "$2" -out "$1.csr"
  printf '%s\n' "$3" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA ca.pem -CAkey ca-key.pem -CAcreateserial \
    -days "$days" -extfile "$1.ext" -out "$1.pem" 2>/dev/null
  rm -f "$1.csr" "$1.ext"
}

sign broker "/CN=localhost" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=DNS:localhost,IP:127.0.0.1"
sign client "/OU=demo/CN=client" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature
extendedKeyUsage=clientAuth"
rm -f ca.srl
echo "made ca.pem, broker.pem, broker-key.pem, client.pem, client-key.pem in $(pwd)"
