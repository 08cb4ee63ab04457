#!/usr/bin/env bash
# Schemathesis against `aquatwin serve`: every documented operation is called with generated
# requests (valid and invalid), as a super_admin, and each answer must be documented (status,
# content type, JSON schema) and never a server error.
#
# Usage: tests/peers/schemathesis_run.sh [AQUATWIN_BINARY] (default target/release/aquatwin);
# SCHEMATHESIS_MAX_EXAMPLES bounds the requests per operation (default 40).
#
# Left out:
# - GET /api/v1/stream: a WebSocket; OpenAPI cannot describe the upgrade, and a plain GET is
#   refused (400) by design. tests/serve_stream.rs drives it with a real WebSocket client.
# - POST /api/v1/ingest: authenticated by a device key in `Authorization`, the header that
#   carries the admin's access token here; tests/serve_http.rs covers its answers.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$(pwd)
binary=${1:-target/release/aquatwin}
max_examples=${SCHEMATHESIS_MAX_EXAMPLES:-40}

work=$(mktemp -d)
device_key="key-of-the-schemathesis-device-0123"
serve_pid=""
cleanup() {
    if [ -n "$serve_pid" ]; then
        kill "$serve_pid" 2>/dev/null || true
        wait "$serve_pid" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/sensors.toml" <<'EOF'
[[sensor]]
id = "P-123"
kind = "pressure"
node = "123"
unit = "psi"
EOF
cat >"$work/aquatwin.toml" <<EOF
data_dir = "data"

[http]
listen = "127.0.0.1:0"

[mqtt]
listen = "127.0.0.1:0"

[lorawan]
udp_listen = "127.0.0.1:0"

[[municipality]]
id = "north"
network = "$root/hydraulics/networks/Net3.inp"
sensors = "sensors.toml"
period_seconds = 1

[[municipality.devices]]
id = "dev-a"
sensors = ["P-123"]
key_sha256 = "$(printf '%s' "$device_key" | sha256sum | cut -d' ' -f1)"
EOF
# The operations of the municipality and its sensor are called with their real ids (random
# ones are only ever 404), so the read routes answer with data.
cat >"$work/schemathesis.toml" <<'EOF'
[parameters]
municipality = "north"
sensor = "P-123"
EOF

password="password-of-the-schemathesis-admin"
AQUATWIN_PASSWORD=$password "$binary" user --data "$work/data" create --name admin \
    --role super_admin >/dev/null
: >"$work/serve.out"
AQUATWIN_JWT_SECRET=$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n') \
    "$binary" serve --config "$work/aquatwin.toml" >"$work/serve.out" 2>"$work/serve.log" &
serve_pid=$!

address=""
for _ in $(seq 1 300); do
    address=$(sed -n 's/^aquatwin serve: listening.* http=\([^ ]*\).*/\1/p' "$work/serve.out")
    [ -n "$address" ] && break
    kill -0 "$serve_pid" 2>/dev/null || { cat "$work/serve.log" >&2; exit 1; }
    sleep 0.1
done
[ -n "$address" ] || { echo "serve did not start" >&2; cat "$work/serve.log" >&2; exit 1; }

token=$(curl -sf -X POST -H 'Content-Type: application/json' \
    -d "{\"username\": \"admin\", \"password\": \"$password\"}" \
    "http://$address/api/v1/auth/login" \
    | python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')

now_ms=$(($(date +%s) * 1000))
for offset in 0 1000 2000; do
    curl -sf -X POST -H 'X-Device-Id: dev-a' -H "X-Device-Key: $device_key" \
        -d "{\"sensor_id\": \"P-123\", \"ts\": $((now_ms - offset)), \"value\": 61.5}" \
        "http://$address/api/v1/ingest" >/dev/null
done

status=0
# From the temporary directory: schemathesis keeps a cache (.schemathesis/) where it runs.
(cd "$work" && schemathesis --config-file schemathesis.toml run "http://$address/api/v1/openapi.json" \
    --header "Authorization: Bearer $token" \
    --checks not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance \
    --max-examples "$max_examples" \
    --exclude-path /api/v1/stream \
    --exclude-path /api/v1/ingest \
    --generation-database none \
    --no-color) || status=$?
if [ "$status" -ne 0 ]; then
    echo "--- serve log" >&2
    tail -50 "$work/serve.log" >&2
fi
exit "$status"
