#!/usr/bin/env bash
# Check-in benchmark on SQLite: a server on a fresh data directory, the simulator in two phases
# (enroll + upload, then check-ins only). Usage: bench/checkin_sqlite.sh N [INVENTORY] [PHASE1_AGENTS]
# DRAIN=1 waits for the upload queue to be empty before phase 2. PROFILE=1 records the server with py-spy in each phase (collapsed stacks: WORK/phase1.txt, WORK/phase2.txt).
set -euo pipefail
N=${1:-2000}
INV=${2:-tests/data/inventories/alpine-3.14.0.apk-installed}
N1=${3:-$N}
cd "$(dirname "$0")/.."
# REUSE=DIR: the data directory of an earlier run; phase 1 is skipped (its result is reported again).
WORK=${REUSE:-$(mktemp -d /tmp/garrison-sqlbench.XXXX)}
if [ -z "${REUSE:-}" ]; then
  garrison tenant create acme --data-dir "$WORK" >/dev/null
  garrison enrollment create --tenant acme --data-dir "$WORK" --json | python -c "import json,sys;print(json.load(sys.stdin)['secret'])" > "$WORK/secret"
fi
SECRET=$(cat "$WORK/secret")
GARRISON_RATE_LIMIT=1000000 garrison server --data-dir "$WORK" --port 19443 --trusted-proxy 127.0.0.1/32 > "$WORK/server.log" 2>&1 &
SRVPID=$!
trap 'kill $SRVPID 2>/dev/null || true' EXIT
sleep 6
spy() { if [ -n "${PROFILE:-}" ]; then py-spy record -p $SRVPID -r 50 -d "$1" -f raw -o "$WORK/$2.txt" >/dev/null 2>&1 & fi; }
spy 130 phase1
[ -n "${REUSE:-}" ] || /usr/bin/time -f "%U %S" -o "$WORK/sim1.time" garrison simulate --server https://127.0.0.1:19443 --enroll "$SECRET" \
  --agents "$N1" --interval 60 --ramp 120 --duration 0 \
  --forwarded-for --inventory "$INV" --state "$WORK/agents.json" --json > "$WORK/phase1.json"
# DRAIN=1: phase 2 starts once the worker has applied every queued upload (check-ins on their own).
DRAINED=0
if [ -n "${DRAIN:-}" ]; then
  while [ "$(python -c "import sqlite3;print(sqlite3.connect('$WORK/garrison.db').execute(\"select count(*) from agent_upload_queue where state='queued'\").fetchone()[0])")" != 0 ]; do
    sleep 2; DRAINED=$((DRAINED + 2))
  done
fi
echo "queue drained after phase 1: ${DRAINED}s  load: $(cut -d' ' -f1-3 /proc/loadavg)"
spy 70 phase2
garrison simulate --server https://127.0.0.1:19443 --enroll "$SECRET" --agents "$N" --interval 10 --ramp 10 --duration 60 \
  --forwarded-for --state "$WORK/agents.json" --json > "$WORK/phase2.json"
echo "work: $WORK  load: $(cut -d' ' -f1-3 /proc/loadavg)"
python -c "
import json; p=json.load(open('$WORK/phase1.json')); d=json.load(open('$WORK/phase2.json'))
print(json.dumps({'phase1': {'enrolled': p['enrolled'], 'batches': p['batches'], 'not_accepted': p['batches_not_accepted'],
  'errors': p['errors'], 'enroll_ms': p['latency_ms']['enroll'], 'batch_ms': p['latency_ms']['batch'], 'duration': p['duration']}}))
print(json.dumps({'agents': $N, 'enrolled_in_phase2': d.get('enrolled'), 'reused': d.get('reused'), 'checkins': d['checkins'], 'per_second': d['checkins_per_second'], 'errors': d['errors'], 'checkin_ms': d['latency_ms']['checkin']}))"
