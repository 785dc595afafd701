#!/usr/bin/env bash
# The test command, after scripts/setup.sh. Tiers (test/tiers.ts says which file is in which):
#   scripts/test.sh                  fast tier (`npm test`): type check, lint, the fast test files,
#                                    the Spark tests (pytest)
#   scripts/test.sh --tier system    system tier (`npm run test:system`): long tests against real
#                                    time, then the chaos tier's short variant
#   scripts/test.sh --tier all       both, on one test stack
#   scripts/test.sh FILE…            only those files, on the test stack
# Tests run against real components: a Kafka broker and a Temporal dev server started here on
# test-only ports with their own data folder (so a running `npm start` stack is left alone), a
# moto server (AWS APIs on loopback, for the aws target's wire-level tests) and a throwaway
# PostgreSQL cluster (the warehouse load's SQL runs on it), all stopped on exit. Test files run
# SMARTCITY_TEST_JOBS (default 2) at a time, each in its own process (test/runner.ts). The last
# line is `tests: N passed, N failed`.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SMARTCITY="$ROOT/bin/smartcity"

tier=fast
if [ "${1:-}" = "--tier" ]; then tier=${2:-}; shift 2 || true; fi
case "$tier" in fast|system|all) ;; *) echo "--tier must be fast, system or all, got \"$tier\""; exit 2 ;; esac
[ "$#" -eq 0 ] || tier=files
began=$(date +%s)

export SMARTCITY_DATA_DIR="$ROOT/.data/test"
# SMARTCITY_TEST_PORT_OFFSET moves every test port, so two checkouts can run their suites at once.
off="${SMARTCITY_TEST_PORT_OFFSET:-0}"
export SMARTCITY_TEMPORAL_PORT=$((27233 + off)) SMARTCITY_TEMPORAL_UI_PORT=$((28233 + off))
export SMARTCITY_KAFKA_PORT=$((29092 + off)) SMARTCITY_KAFKA_CONTROLLER_PORT=$((29093 + off))
# The Spark cluster the cluster tier starts (test/integration/spark-cluster.test.ts).
export SMARTCITY_SPARK_MASTER_PORT=$((27077 + off)) SMARTCITY_SPARK_MASTER_UI_PORT=$((28080 + off)) SMARTCITY_SPARK_WORKER_UI_PORT=$((28081 + off))
# Workers the tests start serve no metrics: several run at once, and one port would be taken by
# the first. Tests that scrape a worker choose their own port; Prometheus gets an offset one.
export SMARTCITY_METRICS_PORT=0 SMARTCITY_PROMETHEUS_PORT=$((29090 + off))
export SMARTCITY_SPARK_CONNECT_PORT=$((25002 + off)) SMARTCITY_SPARK_CONNECT_UI_PORT=$((24050 + off))
unset SMARTCITY_CONFIG SMARTCITY_KAFKA_BROKERS SMARTCITY_TEMPORAL_ADDRESS SMARTCITY_TARGET

"$SMARTCITY" stack down --force >/dev/null 2>&1 || true
bash "$ROOT/scripts/postgres.sh" stop "$SMARTCITY_DATA_DIR/postgres" 2>/dev/null || true
rm -rf "$SMARTCITY_DATA_DIR"
REPORTS="$SMARTCITY_DATA_DIR/reports"
mkdir -p "$REPORTS" "$SMARTCITY_DATA_DIR/logs"
MOTO_PORT="${SMARTCITY_TEST_MOTO_PORT:-$((29500 + off))}"
export SMARTCITY_TEST_MOTO_ENDPOINT="http://127.0.0.1:$MOTO_PORT"
moto_pid="" stack_pid="" pytest_pid=""
export SMARTCITY_TEST_POSTGRES_PORT=$((29432 + off))
POSTGRES_DIR="$SMARTCITY_DATA_DIR/postgres"
cleanup() {
  [ -z "$stack_pid" ] || wait "$stack_pid" 2>/dev/null || true
  [ -z "$pytest_pid" ] || kill "$pytest_pid" 2>/dev/null || true
  "$SMARTCITY" stack down --force >/dev/null 2>&1 || true
  [ -z "$moto_pid" ] || kill "$moto_pid" 2>/dev/null || true
  bash "$ROOT/scripts/postgres.sh" stop "$POSTGRES_DIR" 2>/dev/null || true
}
trap cleanup EXIT

# The stack's JVMs start while the type check and lint use the CPU.
echo "== test stack (starting in the background)"
"$SMARTCITY" stack up > "$SMARTCITY_DATA_DIR/logs/stack-up.log" 2>&1 &
stack_pid=$!
status=0
if [ "$tier" = fast ] || [ "$tier" = all ]; then
  echo "== type check"
  npx tsc --noEmit -p . || status=1
  echo "== lint"
  npx eslint --max-warnings 0 . || status=1
fi
# One workflow bundle for every test file and worker process of the run (workers/bundle.ts).
"$SMARTCITY" worker --build-bundle
wait "$stack_pid" || { cat "$SMARTCITY_DATA_DIR/logs/stack-up.log"; echo "the test stack did not start"; exit 1; }
stack_pid=""
cat "$SMARTCITY_DATA_DIR/logs/stack-up.log"
# Fake credentials for moto only; real AWS access uses the default credential chain.
AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing "$ROOT/.tools/venv/bin/moto_server" -H 127.0.0.1 -p "$MOTO_PORT" \
  > "$SMARTCITY_DATA_DIR/logs/moto.log" 2>&1 &
moto_pid=$!
for _ in $(seq 1 100); do
  curl -fsS "$SMARTCITY_TEST_MOTO_ENDPOINT/moto-api/" >/dev/null 2>&1 && break
  kill -0 "$moto_pid" 2>/dev/null || { cat "$SMARTCITY_DATA_DIR/logs/moto.log"; echo "moto server did not start"; exit 1; }
  sleep 0.1
done
echo "moto server on $SMARTCITY_TEST_MOTO_ENDPOINT"
bash "$ROOT/scripts/postgres.sh" start "$POSTGRES_DIR" "$SMARTCITY_TEST_POSTGRES_PORT"
echo "PostgreSQL on 127.0.0.1:$SMARTCITY_TEST_POSTGRES_PORT"

node_pass=0 node_fail=0
# runner TIER [FILE…]: the test files of TIER (or the FILEs), counted into node_pass/node_fail.
runner() {
  local t=$1; shift
  echo "== TypeScript tests ($t tier)"
  node --import tsx test/runner.ts --tier "$t" --jobs "${SMARTCITY_TEST_JOBS:-2}" --reports "$REPORTS" "$@" || status=1
  local p f
  read -r p f < <(node -e 'const r = require(process.argv[1]); console.log(r.passed, r.failed)' "$REPORTS/node-$t.json" 2>/dev/null || echo "0 1")
  node_pass=$((node_pass + p)) node_fail=$((node_fail + f))
}

py_pass=0 py_fail=0
# The Spark tests run beside the TypeScript files: both spend much of their time waiting on JVMs.
pytest_start() {
  "$ROOT/.tools/venv/bin/python" -m pytest -q -p no:cacheprovider --junitxml="$REPORTS/pytest.xml" spark/tests > "$REPORTS/pytest.log" 2>&1 &
  pytest_pid=$!
}
pytest_finish() {
  local rc=0
  wait "$pytest_pid" || rc=$?
  pytest_pid=""
  echo "== Spark tests (pytest)"
  cat "$REPORTS/pytest.log"
  [ "$rc" -eq 0 ] || status=1
  local tests=0 failed=$((rc != 0)) errors=0 skipped=0
  [ -f "$REPORTS/pytest.xml" ] && read -r tests failed errors skipped < <(python3 - "$REPORTS/pytest.xml" <<'PY'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suite = root if root.tag == "testsuite" else root.find("testsuite")
print(*(int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")))
PY
  ) || true
  py_fail=$((failed + errors))
  py_pass=$((tests - py_fail - skipped))
}

chaos_pass=0 chaos_fail=0
chaos_short() {
  echo "== chaos tier (short)"
  # The suite's stack is done: its memory and cores go to the tier's own.
  "$SMARTCITY" stack down --force >/dev/null 2>&1 || true
  node --import tsx test/chaos/main.ts --short | tee "$REPORTS/chaos.log" || status=1
  read -r chaos_pass chaos_fail < <(sed -n 's/^chaos: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' "$REPORTS/chaos.log") || chaos_fail=1
}

case "$tier" in
  files) runner files "$@" ;;
  fast) pytest_start; runner fast; pytest_finish ;;
  system) runner system; chaos_short ;;
  all) pytest_start; runner fast; pytest_finish; runner system; chaos_short ;;
esac

passed=$((node_pass + py_pass + chaos_pass)) failed=$((node_fail + py_fail + chaos_fail))
echo
echo "$tier tier took $(( $(date +%s) - began )) s"
echo "tests: $passed passed, $failed failed"
exit "$status"
