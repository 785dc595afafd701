"""Streaming ingest: the five Kafka topics → raw Parquet (valid records) and quarantine (the rest).

One query, one foreachBatch, one Spark job per micro-batch: its tasks validate the records and
write them into partitions ending in batch_id=N (smartcity_spark.landing). Spark logs a batch's
offsets before running it and commits it after; a batch replayed after a crash reads the same
records, and what its first attempt wrote is deleted before the replay writes it again: raw and
quarantine hold every consumed record once, whatever is killed when.

    spark-submit --jars <kafka jars> spark/jobs/stream_ingest.py --lake-root .data/lake
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
import time
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping

try:
    import smartcity_spark  # noqa: F401  (shipped with --py-files on a cluster)
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyspark import Broadcast
from pyspark.errors import StreamingQueryException
from pyspark.java_gateway import ensure_callback_server_started
from pyspark.sql import DataFrame, SparkSession

from smartcity_spark.landing import INPUT_COLUMNS, SUMMARY_SCHEMA, BatchLanding, BatchLayout, epoch_micros, from_epoch_micros
from smartcity_spark.runtime import LakeFS, default_lake_root, iso_utc, join, session, ship_package
from smartcity_spark.schemas import SchemaError, SourceSchema, default_schemas_dir, load_schemas
from smartcity_spark.validation import MIB, RecordValidator

_LOGIN_MODULES = {
    "plain": "org.apache.kafka.common.security.plain.PlainLoginModule",
    "scram-sha-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "scram-sha-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
}


def log(message: str) -> None:
    print(f"[stream_ingest] {message}", file=sys.stderr, flush=True)


def default_brokers(env: Mapping[str, str]) -> str:
    """SMARTCITY_KAFKA_BROKERS (comma-separated), else the local broker on SMARTCITY_KAFKA_PORT."""
    listed = [b.strip() for b in env.get("SMARTCITY_KAFKA_BROKERS", "").split(",") if b.strip()]
    return ",".join(listed) or f"127.0.0.1:{env.get('SMARTCITY_KAFKA_PORT') or 9092}"


def kafka_secret(secret_id: str, client=None) -> tuple[str, str]:
    """(username, password) of the Secrets Manager secret (JSON with both, as MSK SCRAM secrets
    are). Read by the job itself so the password never appears in step arguments or logs."""
    if client is None:
        import boto3  # only the aws target needs it; EMR ships it

        # An ARN names its region; EMR steps do not always have a default region configured.
        parts = secret_id.split(":")
        region = parts[3] if secret_id.startswith("arn:") and len(parts) > 3 and parts[3] else None
        client = boto3.client("secretsmanager", **({"region_name": region} if region else {}))
    try:
        value = json.loads(client.get_secret_value(SecretId=secret_id)["SecretString"])
    except (KeyError, ValueError, TypeError) as err:
        raise SystemExit(f"--kafka-secret-id {secret_id}: expected a secret string with JSON {{\"username\": …, \"password\": …}} ({type(err).__name__})") from None
    user, password = value.get("username") if isinstance(value, dict) else None, value.get("password") if isinstance(value, dict) else None
    if not isinstance(user, str) or not user or not isinstance(password, str) or not password:
        raise SystemExit(f"--kafka-secret-id {secret_id}: the secret's JSON needs non-empty \"username\" and \"password\"")
    return user, password


def kafka_options(brokers: str, pairs: list[str], env: Mapping[str, str], sasl: tuple[str, str, str] | None = None) -> dict[str, str]:
    """Consumer settings: TLS/SASL from the project's SMARTCITY_KAFKA_* variables (the ones the
    TypeScript side reads) or from `sasl` (mechanism, username, password: the Secrets Manager
    secret on EMR, which implies TLS), then every --kafka-option, which wins."""
    options = {"kafka.bootstrap.servers": brokers}
    mechanism = (sasl[0] if sasl else env.get("SMARTCITY_KAFKA_SASL_MECHANISM", "")).lower()
    ssl_setting = "" if sasl else env.get("SMARTCITY_KAFKA_SSL", "").lower()
    ssl = ssl_setting in ("true", "1") if ssl_setting else bool(mechanism)
    if mechanism:
        if mechanism not in _LOGIN_MODULES:
            raise SystemExit(f"SASL mechanism {mechanism!r}: expected one of {', '.join(_LOGIN_MODULES)}")
        user, password = sasl[1:] if sasl else (env.get("SMARTCITY_KAFKA_SASL_USERNAME"), env.get("SMARTCITY_KAFKA_SASL_PASSWORD"))
        if not user or not password:
            raise SystemExit("SMARTCITY_KAFKA_SASL_MECHANISM is set: SMARTCITY_KAFKA_SASL_USERNAME and SMARTCITY_KAFKA_SASL_PASSWORD must be set too")

        def quoted(s: str) -> str:
            return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'

        options["kafka.security.protocol"] = "SASL_SSL" if ssl else "SASL_PLAINTEXT"
        options["kafka.sasl.mechanism"] = mechanism.upper()
        options["kafka.sasl.jaas.config"] = f"{_LOGIN_MODULES[mechanism]} required username={quoted(user)} password={quoted(password)};"
    elif ssl:
        options["kafka.security.protocol"] = "SSL"
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--kafka-option {pair!r}: expected KEY=VALUE")
        options[key if key.startswith("kafka.") else f"kafka.{key}"] = value
    return options


def resolve_topics(schemas: Mapping[str, SourceSchema], pairs: list[str]) -> dict[str, str]:
    """Source → topic: each schema's x-topic unless --topic SOURCE=TOPIC names another."""
    topics = {source: schema.topic for source, schema in schemas.items()}
    for pair in pairs:
        source, sep, topic = pair.partition("=")
        if not sep or source not in schemas or not topic:
            raise SystemExit(f"--topic {pair!r}: expected SOURCE=TOPIC with SOURCE one of {', '.join(schemas)}")
        topics[source] = topic
    if len(set(topics.values())) != len(topics):
        raise SystemExit(f"two sources share a topic: {topics}")
    return topics


class BatchWriter:
    """The foreachBatch function: one Spark job lands the batch (smartcity_spark.landing), then
    the batch's progress line is appended."""

    def __init__(self, schemas: Mapping[str, SourceSchema], topics: Mapping[str, str], fs: LakeFS, *, roots: Mapping[str, str],
                 checkpoint: str, progress_file: str, max_record_bytes: int, stopping: threading.Event | None = None):
        self.schemas = schemas
        self.fs = fs
        self.checkpoint = checkpoint
        self.progress_file = progress_file
        self.layout = BatchLayout(schemas, topics, RecordValidator(schemas, topics, max_record_bytes), roots, checkpoint)
        self.shared_layout: Broadcast | None = None
        # Part of every file name: a new checkpoint (batch ids from 0 again) never overwrites old files.
        self.run_id: str | None = None
        # For a clean stop: the request, the batch inside foreachBatch now and the last one finished.
        self.stopping = stopping or threading.Event()
        self.abandoning = False
        self.running: int | None = None
        self.finished = -1
        self.idle = threading.Event()
        self.idle.set()

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        self.running = batch_id
        self.idle.clear()
        try:
            self._write(batch, batch_id)
            self.finished = batch_id
        finally:
            self.running = None
            self.idle.set()

    def _land(self, batch: DataFrame, batch_id: int, ingest_time: datetime) -> tuple[list[dict], float]:
        """Runs the batch's one Spark job; returns the tasks' summaries and when the job started."""
        if self.run_id is None:
            # Spark writes the query's id into the checkpoint before it runs the first batch.
            self.run_id = json.loads(self.fs.read_text(join(self.checkpoint, "metadata")).splitlines()[0])["id"]
            self.shared_layout = batch.sparkSession.sparkContext.broadcast(self.layout)
        self.layout.forget_intents_before(batch_id)
        # One task per Kafka partition would mean one Python round trip each, mostly for a handful
        # of records; one per core does the same work with far less overhead.
        rows = batch.select(*INPUT_COLUMNS).coalesce(batch.sparkSession.sparkContext.defaultParallelism)
        job = rows.mapInArrow(BatchLanding(self.shared_layout, batch_id, ingest_time, self.run_id), SUMMARY_SCHEMA)
        retried = False
        while True:
            submitted = time.monotonic()
            try:
                return [json.loads(row.summary) for row in job.collect()], submitted
            except Exception:
                # A stop signal sent to the whole process group also reaches the Python workers
                # that run the batch's tasks. Landing is idempotent, so the batch is landed once
                # more rather than abandoned.
                if retried or not self.stopping.is_set() or self.abandoning:
                    raise
                retried = True
                log(f"batch {batch_id}: a task failed while stopping; landing the batch again")

    def _write(self, batch: DataFrame, batch_id: int) -> None:
        started = time.monotonic()
        ingest_time = datetime.now(timezone.utc)
        summaries, submitted = self._land(batch, batch_id, ingest_time)
        landed = time.monotonic()
        valid = dict.fromkeys(self.schemas, 0)
        quarantined = dict.fromkeys(self.schemas, 0)
        kinds: dict[str, Counter] = {}
        newest: dict[str, int] = {}
        partitions: dict[str, dict[str, list[int]]] = {}
        task_ms = Counter()
        for summary in summaries:
            for source, n in summary["valid"].items():
                valid[source] += n
            for source, n in summary["quarantined"].items():
                quarantined[source] += n
            for source, counts in summary["kinds"].items():
                kinds.setdefault(source, Counter()).update(counts)
            for source, micros in summary["newest"].items():
                newest[source] = max(micros, newest.get(source, micros))
            for topic, stats in summary["partitions"].items():
                for partition, (count, first, last, oldest) in stats.items():
                    known = partitions.setdefault(topic, {}).get(partition)
                    partitions[topic][partition] = [count, first, last, oldest] if known is None else [
                        known[0] + count, min(known[1], first), max(known[2], last), min(known[3], oldest)]
            task_ms.update(summary["ms"])
        oldest_ms = min((stats[3] // 1000 for parts in partitions.values() for stats in parts.values()), default=None)
        ingest_ms = epoch_micros(ingest_time) // 1000
        progress = {
            "batch_id": batch_id,
            "ingest_time": iso_utc(ingest_time),
            "duration_ms": 0,
            "consumed": sum(stats[0] for parts in partitions.values() for stats in parts.values()),
            "valid": valid,
            "quarantined": quarantined,
            "offsets": {topic: {p: {"start": s[1], "end": s[2] + 1} for p, s in parts.items()} for topic, parts in partitions.items()},
            "freshness_ms": None if oldest_ms is None else ingest_ms - oldest_ms,
            "newest_event_time": {source: iso_utc(from_epoch_micros(micros)) for source, micros in newest.items()},
            "quarantined_kinds": {source: dict(counts) for source, counts in kinds.items()},
            "phases": {
                "plan": round((submitted - started) * 1000),
                "job": round((landed - submitted) * 1000),
                **{phase: round(seconds * 1000) for phase, seconds in task_ms.items()},
            },
        }
        finished = time.monotonic()
        progress["phases"]["report"] = round((finished - landed) * 1000)
        progress["duration_ms"] = round((finished - started) * 1000)
        self.fs.append_line(self.progress_file, json.dumps(progress, separators=(",", ":")))


class _JvmSignalHandler:
    """A sun.misc.SignalHandler implemented in Python (through the py4j callback server)."""

    def __init__(self, on_signal):
        self.on_signal = on_signal

    def handle(self, sig) -> None:
        self.on_signal(f"SIG{sig.getName()}")

    class Java:
        implements = ["sun.misc.SignalHandler"]


def install_stop_handlers(spark: SparkSession, stop: threading.Event) -> None:
    """Under spark-submit the JVM is the process a supervisor signals, and its default TERM action
    exits 143 in the middle of a batch. Both the JVM's and Python's (for a driver started as plain
    python) TERM/INT now only ask the main loop to stop after the running batch."""

    def request(name: str) -> None:
        if not stop.is_set():
            log(f"{name} received: stopping after the current batch")
            stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda signum, _frame: request(signal.Signals(signum).name))
    jvm = spark.sparkContext._jvm
    ensure_callback_server_started(spark.sparkContext._gateway)
    handler = _JvmSignalHandler(request)
    for name in ("TERM", "INT"):
        jvm.sun.misc.Signal.handle(jvm.sun.misc.Signal(name), handler)


def stop_after_running_batch(spark: SparkSession, query, writer: BatchWriter, timeout_seconds: float) -> None:
    """Lets the batch whose files are being written finish and be committed, then stops the query.

    A batch Spark is still planning has written nothing and is abandoned: not committed, a restart
    replays it. Past the timeout the running batch is abandoned too (its jobs are cancelled); its
    replay later replaces whatever it wrote."""
    deadline = time.monotonic() + timeout_seconds
    target = writer.running if writer.running is not None else writer.finished
    if not writer.idle.wait(timeout_seconds):
        log(f"batch {writer.running} did not finish in {timeout_seconds:g}s: abandoning it (a restart replays it)")
        writer.abandoning = True
        spark.sparkContext.cancelAllJobs()
    else:
        # foreachBatch has returned; Spark writes the batch's commit right after it.
        while query.isActive and (query.lastProgress or {}).get("batchId", -1) < target and time.monotonic() < deadline:
            time.sleep(0.01)
    query.stop()


def parse_args(argv: list[str], env: Mapping[str, str]) -> argparse.Namespace:
    def positive(kind):
        def parse(text: str):
            value = kind(text)
            if value <= 0:
                raise argparse.ArgumentTypeError(f"{text} is not positive")
            return value

        return parse

    p = argparse.ArgumentParser(prog="stream_ingest.py", description="Kafka → raw / quarantine Parquet, exactly once.")
    p.add_argument("--lake-root", default=default_lake_root(env), help="local path or s3://… (default: %(default)s)")
    p.add_argument("--raw-root", help="valid events, one folder per source (default: <lake-root>/raw)")
    p.add_argument("--quarantine-root", help="rejected records, one folder per source (default: <lake-root>/quarantine)")
    p.add_argument("--checkpoint", help="default: <lake-root>/checkpoints/ingest")
    p.add_argument("--progress-file", help="one JSON line per micro-batch (default: <lake-root>/_progress/ingest.jsonl)")
    p.add_argument("--schemas-dir", default=default_schemas_dir(), help="event contracts (default: %(default)s)")
    p.add_argument("--brokers", default=default_brokers(env), help="default: SMARTCITY_KAFKA_BROKERS or 127.0.0.1:${SMARTCITY_KAFKA_PORT:-9092}")
    p.add_argument("--topic", action="append", default=[], metavar="SOURCE=TOPIC", help="repeatable; default: the x-topic of each schema")
    p.add_argument("--kafka-option", action="append", default=[], metavar="KEY=VALUE", help="Kafka consumer setting (kafka. prefix optional), repeatable")
    p.add_argument("--kafka-secret-id", help="Secrets Manager secret with the SASL username/password (JSON); turns on SASL_SSL")
    p.add_argument("--kafka-sasl-mechanism", choices=sorted(_LOGIN_MODULES), default="scram-sha-512", help="with --kafka-secret-id (default: %(default)s)")
    p.add_argument("--starting-offsets", choices=["earliest", "latest"], default="earliest", help="where a new checkpoint starts (default: %(default)s)")
    p.add_argument("--max-offsets-per-trigger", type=positive(int), help="cap on records per micro-batch (default: none)")
    trigger = p.add_mutually_exclusive_group()
    trigger.add_argument("--trigger-seconds", type=positive(float), default=10.0, help="micro-batch interval (default: %(default)s)")
    trigger.add_argument("--available-now", action="store_true", help="process what is in Kafka now, then exit")
    p.add_argument("--max-record-bytes", type=positive(int), default=MIB, help="larger records are quarantined (default: %(default)s)")
    p.add_argument("--stop-timeout-seconds", type=positive(float), default=60.0, help="on SIGTERM, wait this long for the running batch (default: %(default)s)")
    args = p.parse_args(argv)
    args.checkpoint = args.checkpoint or join(args.lake_root, "checkpoints", "ingest")
    args.raw_root = args.raw_root or join(args.lake_root, "raw")
    args.quarantine_root = args.quarantine_root or join(args.lake_root, "quarantine")
    args.progress_file = args.progress_file or join(args.lake_root, "_progress", "ingest.jsonl")
    return args


def run(spark: SparkSession, args: argparse.Namespace, env: Mapping[str, str]) -> int:
    fs = LakeFS(spark)
    schemas = load_schemas(fs.read_json_dir(args.schemas_dir))
    topics = resolve_topics(schemas, args.topic)
    sasl = (args.kafka_sasl_mechanism, *kafka_secret(args.kafka_secret_id)) if args.kafka_secret_id else None
    options = kafka_options(args.brokers, args.kafka_option, env, sasl)
    ship_package(spark)
    stop = threading.Event()
    batch_writer = BatchWriter(schemas, topics, fs, roots={"raw": args.raw_root, "quarantine": args.quarantine_root}, checkpoint=args.checkpoint,
                               progress_file=args.progress_file, max_record_bytes=args.max_record_bytes, stopping=stop)
    discarded = batch_writer.layout.discard_uncommitted(lambda batch_id: fs.exists(join(args.checkpoint, "commits", str(batch_id))))
    if discarded:
        log(f"deleted the files of batch(es) {', '.join(map(str, discarded))}, not committed when the job last stopped; Spark replays them")
    install_stop_handlers(spark, stop)

    reader = (
        spark.readStream.format("kafka")
        .options(**options)
        .option("subscribe", ",".join(topics.values()))
        .option("startingOffsets", args.starting_offsets)
    )
    if args.max_offsets_per_trigger:
        reader = reader.option("maxOffsetsPerTrigger", args.max_offsets_per_trigger)
    stream = (
        reader.load()
        .writeStream.queryName("smartcity-ingest")
        .option("checkpointLocation", args.checkpoint)
        .foreachBatch(batch_writer)
    )
    stream = stream.trigger(availableNow=True) if args.available_now else stream.trigger(processingTime=f"{args.trigger_seconds} seconds")
    query = stream.start()
    log(f"running: topics {', '.join(topics.values())} → {args.raw_root}, {args.quarantine_root} (checkpoint {args.checkpoint})")
    failure = None
    try:
        while not stop.is_set() and not query.awaitTermination(1):
            pass
    except StreamingQueryException as err:
        failure = err
    if query.isActive:
        stop_after_running_batch(spark, query, batch_writer, args.stop_timeout_seconds)
    failure = failure or query.exception()
    if failure is not None:
        if not stop.is_set():
            log(f"query failed: {failure}")
            return 1
        # The stop request itself can break a batch (see BatchWriter): not committed, it is
        # replayed on restart, so this is still the requested stop.
        log(f"the query ended with an error after the stop request; its batch is replayed on restart: {failure}")
    log("stopped")
    return 0


def main(argv: list[str] | None = None) -> int:
    env = dict(os.environ)
    args = parse_args(sys.argv[1:] if argv is None else argv, env)
    spark = session("smartcity-stream-ingest")
    try:
        return run(spark, args, env)
    except SchemaError as err:
        log(f"cannot use the event contracts in {args.schemas_dir}: {err}")
        return 2
    finally:
        spark.stop()


if __name__ == "__main__":
    sys.exit(main())
