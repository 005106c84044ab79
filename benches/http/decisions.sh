#!/bin/bash
# Decisions through HTTP, as a CA front sees them: `prereg serve` on a fresh
# data folder with N registrations (default 100,000), driven by wrk (Debian:
# apt-get install wrk) with 2 threads and C connections (default 16) posting
# /v1/decisions/check (dry runs, the default) or, with DECISION=enroll,
# /v1/decisions/enroll (counted, audited, durable) for random names, half of
# them registered.
#
#   [DECISION=check|enroll] [C=16] benches/http/decisions.sh [PREREG_BINARY] [SECONDS]
#
# With LOAD=prereg the load comes from `prereg bench --http` (the project's
# own generator, `--enroll-percent ENROLL_PERCENT`, default 0, or 100 with
# DECISION=enroll) instead of wrk; PLOT=FILE.svg draws it.
#
# Prints wrk's report and the service's counters (dry runs answered from
# memory; enrollment batches). wrk runs on the same machine: read the figures
# side by side.
set -euo pipefail
P=$(realpath "${1:-target/release/prereg}")
SECONDS_TO_RUN=${2:-15}
HERE=$(dirname "$(realpath "$0")")
N=${N:-100000}
PORT=${PORT:-18480}
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
"$P" --data data procedure add routers --domain corp --protocol scep >/dev/null
python3 -c "
n = $N
with open('fleet.csv', 'w') as f:
    f.write('fqdn,ip,serial\n')
    for i in range(n):
        f.write(f'host{i}.fleet{i % 100}.example.com,,\n')
"
"$P" --data data import fleet.csv --procedure routers >/dev/null
SECRET=$("$P" --data data caller add bench --procedures routers | awk '/^secret /{print $2}')
"$P" --data data serve --listen "127.0.0.1:$PORT" --failure-burst 100000000 --failures-per-minute 100000000 \
    >server.log 2>&1 &
SP=$!
for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$PORT/healthz" && break; sleep 0.2; done
DECISION=${DECISION:-check}
C=${C:-16}
export SECRET N DECISION
if [ "${LOAD:-wrk}" = prereg ]; then
    python3 -c "
n = $N
with open('names.txt', 'w') as f:
    for i in range(2 * n):
        f.write(f'host{i}.fleet{i % 100}.example.com\n')
"
    PERCENT=${ENROLL_PERCENT:-$([ "$DECISION" = enroll ] && echo 100 || echo 0)}
    PREREG_CALLER_SECRET=$SECRET "$P" bench --http "http://127.0.0.1:$PORT" --procedure routers --names names.txt \
        --enroll-percent "$PERCENT" --connections "$C" --seconds 3 >/dev/null
    PREREG_CALLER_SECRET=$SECRET "$P" bench --http "http://127.0.0.1:$PORT" --procedure routers --names names.txt \
        --enroll-percent "$PERCENT" --connections "$C" --seconds "$SECONDS_TO_RUN" ${PLOT:+--plot "$PLOT"}
else
    wrk -t2 -c"$C" -d3s -s "$HERE/decisions.lua" "http://127.0.0.1:$PORT" >/dev/null
    wrk -t2 -c"$C" -d"${SECONDS_TO_RUN}s" --latency -s "$HERE/decisions.lua" "http://127.0.0.1:$PORT"
fi
curl -s -H "Authorization: Bearer $SECRET" "http://127.0.0.1:$PORT/metrics" | grep -E '^prereg_(dry_runs_from_memory|enroll_)' || true
