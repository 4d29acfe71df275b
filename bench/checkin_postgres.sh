#!/usr/bin/env bash
# Check-in benchmark on PostgreSQL: a throw-away cluster (tests/pg.py), a server on it, the
# simulator in two phases (enroll + upload, then check-ins only). Usage: [RAMP=S] bench/checkin_postgres.sh N
# (RAMP: seconds phase 1 spreads the enrollments over, default 60)
set -euo pipefail
N=${1:-2000}
cd "$(dirname "$0")/.."
WORK=$(mktemp -d /tmp/garrison-pgbench.XXXX)
python - "$WORK" <<'PY' &
import sys, time, pathlib
from tests.pg import TempPostgres, create_database
pg = TempPostgres(); base = pg.start()
pathlib.Path(sys.argv[1], "url").write_text(create_database(base))
try:
    while True: time.sleep(3600)
finally:
    pg.stop()
PY
PGPID=$!
trap 'kill $PGPID $SRVPID 2>/dev/null || true' EXIT
while [ ! -s "$WORK/url" ]; do sleep 0.5; done
URL=$(cat "$WORK/url")
garrison tenant create acme --database-url "$URL" --data-dir "$WORK" >/dev/null
SECRET=$(garrison enrollment create --tenant acme --database-url "$URL" --data-dir "$WORK" --json | python -c "import json,sys;print(json.load(sys.stdin)['secret'])")
GARRISON_RATE_LIMIT=1000000 garrison server --database-url "$URL" --data-dir "$WORK" --port 19444 --trusted-proxy 127.0.0.1/32 > "$WORK/server.log" 2>&1 &
SRVPID=$!
sleep 6
INV=tests/data/inventories/alpine-3.14.0.apk-installed
garrison simulate --server https://127.0.0.1:19444 --enroll "$SECRET" --agents "$N" --interval 60 --ramp "${RAMP:-60}" --duration 0 \
  --forwarded-for --inventory "$INV" --state "$WORK/agents.json" --json > "$WORK/phase1.json"
garrison simulate --server https://127.0.0.1:19444 --enroll "$SECRET" --agents "$N" --interval 10 --ramp 10 --duration 60 \
  --forwarded-for --state "$WORK/agents.json" --json > "$WORK/phase2.json"
python -c "
import json,sys; d=json.load(open('$WORK/phase2.json'))
print(json.dumps({'agents': $N, 'enrolled_reused': d.get('enrolled'), 'checkins': d['checkins'], 'per_second': d['checkins_per_second'], 'errors': d['errors'], 'checkin_ms': d['latency_ms']['checkin']}))"
