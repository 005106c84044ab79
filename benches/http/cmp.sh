#!/bin/bash
# Certificates issued per second over CMP with implicit confirmation: a fresh
# data folder with a CA, a CMP procedure and one wildcard registration with a
# password, `prereg serve`, and the load generator (benches/cmp_load.rs) with
# 16 clients, each `ir` for a new device name under the wildcard.
#
#   benches/http/cmp.sh [PREREG_BINARY] [SECONDS] [PBMAC1_ITERATIONS]
#
# Build the generator first: cargo build --release -p prereg --example cmp_load
set -euo pipefail
P=$(realpath "${1:-target/release/prereg}")
SECONDS_TO_RUN=${2:-10}
ITERATIONS=${3:-1000}
LOAD=$(realpath "${LOAD:-target/release/examples/cmp_load}")
PORT=${PORT:-18481}
D=$(mktemp -d)
# The server is waited for: a run started right after this one must not find
# it still answering on the port (its own server would fail to bind, and the
# load would go to this one).
trap '[ -n "${SP:-}" ] && kill $SP 2>/dev/null && wait $SP 2>/dev/null; rm -rf "$D"' EXIT
if curl -s -o /dev/null "http://127.0.0.1:$PORT/healthz"; then
    echo "port $PORT already answers: stop that server first" >&2
    exit 1
fi
cd "$D"
"$P" --data data init >/dev/null
"$P" --data data ca init --name "Load CA" >/dev/null
"$P" --data data procedure add routers --domain corp --protocol cmp >/dev/null
echo "s3cret-enough" >pw
"$P" --data data register --procedure routers --fqdn "*.dept.example.com" --password-file pw \
    --max-enrollments 100000000 >/dev/null
"$P" --data data serve --listen "127.0.0.1:$PORT" --failure-burst 100000000 --failures-per-minute 100000000 \
    --enroll-burst 100000000 --enroll-per-minute 100000000 >server.log 2>&1 &
SP=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/healthz" && break; sleep 0.2; done
"$LOAD" "http://127.0.0.1:$PORT/.well-known/cmp/p/routers" s3cret-enough dept.example.com 16 "$SECONDS_TO_RUN" "$ITERATIONS"
