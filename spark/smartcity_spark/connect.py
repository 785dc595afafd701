"""A Spark Connect client's hold on its server-side session.

On the local target the batch jobs run as Spark Connect clients of one long-lived server (the
stack's `spark-connect`), so that a run pays a client's start-up (about a second) instead of a
JVM's and a SparkContext's. A run's work then happens in the server: when its client dies (SIGKILL,
or a stop that gave up waiting), the operation it started keeps running there. Each run of a job
name uses the same session id (the runner derives it from the name), so whoever comes next for
that name -- the retried run, or the runner after a stop -- takes the session over: it interrupts
every operation of the session and waits until the server reports none of them running, and only
then may anyone write the same folders again.

    python -m smartcity_spark.connect    # take over the session of $SPARK_REMOTE, then exit
"""
from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from typing import Callable, Mapping

from pyspark.sql import SparkSession

UI_ENV = "SMARTCITY_SPARK_CONNECT_UI"
TAKE_OVER_TIMEOUT_S = 120.0
POLL_S = 0.2


def session_id(remote: str) -> str:
    """The session_id parameter of a Spark Connect URL (sc://host:port/;session_id=…;…)."""
    for part in remote.split(";")[1:]:
        key, _, value = part.partition("=")
        if key == "session_id" and value:
            return value
    raise ValueError(f"{remote!r} names no session_id; the runner sets one per job name")


def running_operations(ui_url: str, session: str, fetch: Callable[[str], object] | None = None) -> list[int]:
    """Ids of the server's SQL executions of `session` that are still running, from the server's
    own REST API (an execution ends after its command did, a write's commit included)."""
    get = fetch or _get_json
    apps = get(f"{ui_url}/api/v1/applications")
    if not isinstance(apps, list) or not apps:
        raise RuntimeError(f"{ui_url} lists no Spark application")
    executions = get(f"{ui_url}/api/v1/applications/{apps[0]['id']}/sql?details=false&length=100000")
    marker = f'session_id: "{session}"'
    return [e["id"] for e in executions if e.get("status") == "RUNNING" and marker in (e.get("description") or "")]


def _get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def take_over_session(spark: SparkSession, env: Mapping[str, str] = os.environ, timeout_s: float = TAKE_OVER_TIMEOUT_S) -> list[str]:
    """For a Spark Connect session: interrupts whatever the session still runs and waits until the
    server runs none of it. Returns the interrupted operation ids. A classic session: nothing."""
    remote = env.get("SPARK_REMOTE")
    if not type(spark).__module__.startswith("pyspark.sql.connect.") or not remote:
        return []
    ui_url = env.get(UI_ENV)
    if not ui_url:
        raise RuntimeError(f"{UI_ENV} is not set: a Spark Connect job needs the server's UI to see its session's operations end")
    session = session_id(remote)
    interrupted = spark.interruptAll()
    deadline = time.monotonic() + timeout_s
    while running := running_operations(ui_url.rstrip("/"), session):
        if time.monotonic() > deadline:
            raise TimeoutError(f"session {session}: operations {running} still running {timeout_s:.0f} s after they were interrupted")
        time.sleep(POLL_S)
    if interrupted:
        print(f"[connect] session {session}: interrupted {len(interrupted)} operation(s) an earlier client left running", file=sys.stderr, flush=True)
    return interrupted


def main() -> int:
    spark = SparkSession.builder.getOrCreate()
    take_over_session(spark)
    return 0


if __name__ == "__main__":
    sys.exit(main())
