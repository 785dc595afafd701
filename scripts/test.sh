#!/usr/bin/env bash
# The test command (npm test, after scripts/setup.sh): type check, lint, then every test against
# real components — a Kafka broker and a Temporal dev server started here on test-only ports with
# their own data folder (so a running `npm start` stack is left alone), stopped on exit.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
SMARTCITY="$ROOT/bin/smartcity"

echo "== type check"
npx tsc --noEmit -p .
echo "== lint"
npx eslint --max-warnings 0 .

export SMARTCITY_DATA_DIR="$ROOT/.data/test"
export SMARTCITY_TEMPORAL_PORT=27233 SMARTCITY_TEMPORAL_UI_PORT=28233
export SMARTCITY_KAFKA_PORT=29092 SMARTCITY_KAFKA_CONTROLLER_PORT=29093
unset SMARTCITY_CONFIG SMARTCITY_KAFKA_BROKERS SMARTCITY_TEMPORAL_ADDRESS SMARTCITY_TARGET

"$SMARTCITY" stack down >/dev/null 2>&1 || true
rm -rf "$SMARTCITY_DATA_DIR"
trap '"$SMARTCITY" stack down >/dev/null 2>&1 || true' EXIT
echo "== test stack"
"$SMARTCITY" stack up

echo "== TypeScript tests"
mapfile -t files < <(find test -name '*.test.ts' | sort)
node --import tsx --test --test-reporter=spec "${files[@]}"

if compgen -G "spark/tests/test_*.py" >/dev/null; then
  echo "== Spark tests"
  "$ROOT/.tools/venv/bin/python" -m pytest -q spark/tests
fi
