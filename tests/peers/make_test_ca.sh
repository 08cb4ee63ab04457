#!/usr/bin/env bash
# A private certificate authority and a server certificate it signed, made with the openssl
# command for the TLS tests of webhooks (tests/notify_delivery.rs, tests/serve_notify.rs).
#
#     make_test_ca.sh DIR
#
# Writes into DIR: ca.pem (the CA's certificate, what a client is told to trust), ca.key, and
# server.pem / server.key: a certificate for 127.0.0.1 and localhost (subjectAltName, as
# rustls requires), valid for two days, that only chains to ca.pem.
set -euo pipefail
dir=$1
mkdir -p "$dir"
cd "$dir"
curve=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
openssl req -x509 "${curve[@]}" -keyout ca.key -out ca.pem -days 2 \
    -subj "/CN=aquatwin test CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign"
openssl req "${curve[@]}" -keyout server.key -out server.csr -subj "/CN=localhost"
printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=serverAuth" "subjectAltName=IP:127.0.0.1,DNS:localhost" >server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 \
    -extfile server.ext -out server.pem
rm -f server.csr server.ext ca.srl
