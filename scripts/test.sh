#!/usr/bin/env bash
# The test command (npm test, after scripts/setup.sh): type check, lint, then every test against
# real components — a Kafka broker and a Temporal dev server started here on test-only ports with
# their own data folder (so a running `npm start` stack is left alone), a moto server (AWS APIs on
# loopback, for the aws target's wire-level tests) and a throwaway PostgreSQL cluster (the
# warehouse load's SQL runs on it), all stopped on exit.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SMARTCITY="$ROOT/bin/smartcity"

echo "== type check"
npx tsc --noEmit -p .
echo "== lint"
npx eslint --max-warnings 0 .

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
MOTO_PORT="${SMARTCITY_TEST_MOTO_PORT:-$((29500 + off))}"
export SMARTCITY_TEST_MOTO_ENDPOINT="http://127.0.0.1:$MOTO_PORT"
moto_pid=""
export SMARTCITY_TEST_POSTGRES_PORT=$((29432 + off))
POSTGRES_DIR="$SMARTCITY_DATA_DIR/postgres"
cleanup() {
  "$SMARTCITY" stack down --force >/dev/null 2>&1 || true
  [ -z "$moto_pid" ] || kill "$moto_pid" 2>/dev/null || true
  bash "$ROOT/scripts/postgres.sh" stop "$POSTGRES_DIR" 2>/dev/null || true
}
trap cleanup EXIT
echo "== test stack"
"$SMARTCITY" stack up
mkdir -p "$SMARTCITY_DATA_DIR/logs"
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

REPORTS="$SMARTCITY_DATA_DIR/reports"
mkdir -p "$REPORTS"
status=0

echo "== TypeScript tests"
# `scripts/test.sh FILE…` runs only those test files on the test stack (no Spark or chaos tier).
if [ "$#" -gt 0 ]; then files=("$@"); else mapfile -t files < <(find test -name '*.test.ts' | sort); fi
node --import tsx --test --test-reporter=spec --test-reporter-destination=stdout \
  --test-reporter=tap --test-reporter-destination="$REPORTS/node.tap" "${files[@]}" || status=1
node_pass=$(sed -n 's/^# pass \([0-9]*\)$/\1/p' "$REPORTS/node.tap")
node_fail=$(sed -n 's/^# fail \([0-9]*\)$/\1/p' "$REPORTS/node.tap")

py_pass=0 py_fail=0
if [ "$#" -eq 0 ] && compgen -G "spark/tests/test_*.py" >/dev/null; then
  echo "== Spark tests"
  rc=0
  "$ROOT/.tools/venv/bin/python" -m pytest -q -p no:cacheprovider --junitxml="$REPORTS/pytest.xml" spark/tests || rc=$?
  [ "$rc" -eq 0 ] || status=1
  py_tests=0 py_failed=$((rc != 0)) py_errors=0 py_skipped=0
  [ -f "$REPORTS/pytest.xml" ] && read -r py_tests py_failed py_errors py_skipped < <(python3 - "$REPORTS/pytest.xml" <<'PY'
import sys, xml.etree.ElementTree as ET
root = ET.parse(sys.argv[1]).getroot()
suite = root if root.tag == "testsuite" else root.find("testsuite")
print(*(int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")))
PY
  ) || true
  py_fail=$((py_failed + py_errors))
  py_pass=$((py_tests - py_fail - py_skipped))
fi

# SMARTCITY_TEST_CHAOS=short (or full) adds the chaos tier (test/chaos), on its own stack and ports.
chaos_pass=0 chaos_fail=0
[ "$#" -eq 0 ] || SMARTCITY_TEST_CHAOS=""
case "${SMARTCITY_TEST_CHAOS:-}" in
  "") ;;
  short|full)
    echo "== chaos tier (${SMARTCITY_TEST_CHAOS})"
    # The suite's stack is done: its memory and cores go to the tier's own.
    "$SMARTCITY" stack down --force >/dev/null 2>&1 || true
    chaos_args=()
    [ "$SMARTCITY_TEST_CHAOS" = short ] && chaos_args=(--short)
    node --import tsx test/chaos/main.ts "${chaos_args[@]}" | tee "$REPORTS/chaos.log" || status=1
    read -r chaos_pass chaos_fail < <(sed -n 's/^chaos: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' "$REPORTS/chaos.log") || chaos_fail=1
    ;;
  *) echo "SMARTCITY_TEST_CHAOS must be short or full, got \"$SMARTCITY_TEST_CHAOS\""; status=1 ;;
esac

echo
echo "tests: $((${node_pass:-0} + py_pass + chaos_pass)) passed, $((${node_fail:-0} + py_fail + chaos_fail)) failed"
exit "$status"
