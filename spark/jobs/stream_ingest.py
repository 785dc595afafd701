"""Streaming ingest: the five Kafka topics → raw Parquet (valid records) and quarantine (the rest).

One query, one foreachBatch. Every micro-batch writes into partitions ending in batch_id=N with
dynamic partition overwrite. Spark logs a batch's offsets before running it and commits it after,
so a batch replayed after a crash reads the same records and replaces exactly the files of its
first attempt: raw and quarantine hold every consumed record once, whatever is killed when.

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
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping

try:
    import smartcity_spark  # noqa: F401  (shipped with --py-files on a cluster)
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyspark import StorageLevel, inheritable_thread_target
from pyspark.errors import StreamingQueryException
from pyspark.java_gateway import ensure_callback_server_started
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from smartcity_spark.runtime import LakeFS, default_lake_root, join, session, ship_package
from smartcity_spark.schemas import RAW_METADATA, Field, SchemaError, SourceSchema, default_schemas_dir, load_schemas
from smartcity_spark.validation import CHECK_TYPE, MIB, RecordValidator

KAFKA_COLUMNS = [name for name in RAW_METADATA.names if name.startswith("kafka_")]
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


def _leaf(struct: Column, field: Field) -> Column:
    for part in field.path.split("."):
        struct = struct.getField(part)
    return struct


def unread_fields(schema: SourceSchema, typed: Column, values: Column) -> Column:
    """Why from_json lost values that passed validation (it turns what it cannot convert into null,
    silently): fewer non-null fields than the validator emitted. Null when nothing was lost."""
    leaves = [(leaf.path, _leaf(typed, leaf)) for leaf in schema.leaves()]
    read = sum((F.when(column.isNotNull(), 1).otherwise(0) for _, column in leaves), F.lit(0))
    nulls = F.concat_ws(", ", *[F.when(column.isNull(), F.lit(path)) for path, column in leaves])
    return F.when(
        read < values,
        F.format_string("Spark could not read %d value(s) that passed validation; null after from_json: %s", values - read, nulls),
    )


class BatchWriter:
    """The foreachBatch function: classify every record once, then write and report the batch."""

    def __init__(self, schemas: Mapping[str, SourceSchema], topics: Mapping[str, str], lake_root: str, fs: LakeFS,
                 progress_file: str, max_record_bytes: int, stopping: threading.Event | None = None,
                 raw_root: str | None = None, quarantine_root: str | None = None):
        self.schemas = schemas
        self.topics = topics
        # One bucket per layer on S3; under one lake root locally.
        self.roots = {"raw": raw_root or join(lake_root, "raw"), "quarantine": quarantine_root or join(lake_root, "quarantine")}
        self.fs = fs
        self.progress_file = progress_file
        self._check = F.udf(RecordValidator(schemas, topics, max_record_bytes).check, CHECK_TYPE)
        # For a clean stop: the request, the batch inside foreachBatch now and the last one finished.
        self.stopping = stopping or threading.Event()
        self.abandoning = False
        self.running: int | None = None
        self.finished = -1
        self.idle = threading.Event()
        self.idle.set()

    def classify(self, batch: DataFrame) -> DataFrame:
        """Kafka rows with their source, reason (null = valid), partition values and, per source,
        the typed event (null unless valid for that source).

        Free of per-batch literals: Spark inlines literals into generated code, and this big
        projection would be compiled anew for every batch instead of once."""
        source_of_topic = F.create_map(*[F.lit(x) for source, topic in self.topics.items() for x in (topic, source)])
        # One task per Kafka partition would mean one Python worker round trip each, mostly for a
        # handful of records; one per core does the same work with far less overhead.
        parallelism = batch.sparkSession.sparkContext.defaultParallelism
        checked = batch.coalesce(parallelism).select(
            F.col("topic").alias("kafka_topic"),
            F.col("partition").alias("kafka_partition"),
            F.col("offset").alias("kafka_offset"),
            F.col("timestamp").alias("kafka_timestamp"),
            "key",
            "value",
            source_of_topic[F.col("topic")].alias("source"),
            self._check("value", "topic").alias("check"),
        )
        passed = F.col("check.reason").isNull()
        parsed = checked.select(
            "*",
            *[F.when(passed & (F.col("source") == s), F.from_json("check.event_json", sc.json_struct)).alias(f"typed_{s}") for s, sc in self.schemas.items()],
        )
        lost = F.coalesce(*[F.when(F.col("source") == s, unread_fields(sc, F.col(f"typed_{s}"), F.col("check.values"))) for s, sc in self.schemas.items()])
        return parsed.select(
            *KAFKA_COLUMNS,
            "key",
            "value",
            "source",
            F.coalesce("check.reason", lost).alias("reason"),
            F.coalesce(F.col("check.error_kind"), F.when(lost.isNotNull(), F.lit("wrong_type"))).alias("error_kind"),
            F.col("check.date").alias("date"),
            F.col("check.hour").alias("hour"),
            *[f"typed_{s}" for s in self.schemas],
        )

    def write_raw(self, rows: DataFrame, source: str, batch_id: int, ingest_time: datetime) -> None:
        typed = F.col(f"typed_{source}")
        columns = [_leaf(typed, leaf).alias(leaf.column) for leaf in self.schemas[source].leaves()]
        (
            rows.where(F.col("reason").isNull() & (F.col("source") == source))
            .withColumn("ingest_time", F.lit(ingest_time))
            .select(*columns, *RAW_METADATA.names, "date", "hour", F.lit(batch_id).alias("batch_id"))
            .write.mode("overwrite")
            .option("partitionOverwriteMode", "dynamic")
            .partitionBy("date", "hour", "batch_id")
            .parquet(join(self.roots["raw"], source))
        )

    def write_quarantine(self, rows: DataFrame, source: str, batch_id: int, ingest_time: datetime) -> None:
        (
            rows.where(F.col("reason").isNotNull() & (F.col("source") == source))
            .select(
                F.decode("value", "UTF-8").alias("value"),
                F.when(F.col("error_kind") == "bad_utf8", F.base64("value")).alias("value_base64"),
                F.length("value").alias("value_bytes"),
                F.decode("key", "UTF-8").alias("kafka_key"),
                *KAFKA_COLUMNS,
                F.lit(ingest_time).alias("ingest_time"),
                "reason",
                "error_kind",
                F.date_format("kafka_timestamp", "yyyy-MM-dd").alias("date"),
                F.lit(batch_id).alias("batch_id"),
            )
            .write.mode("overwrite")
            .option("partitionOverwriteMode", "dynamic")
            .partitionBy("date", "batch_id")
            .parquet(join(self.roots["quarantine"], source))
        )

    def _write_files(self, rows: DataFrame, batch_id: int, ingest_time: datetime, valid: dict, quarantined: dict) -> None:
        # Ten small write jobs spend most of their time planning and committing, not computing;
        # run side by side they overlap that. Each goes to its own table root.
        write_raw, write_quarantine = inheritable_thread_target(self.write_raw), inheritable_thread_target(self.write_quarantine)
        with ThreadPoolExecutor(max_workers=4) as pool:
            writes = [pool.submit(write_raw, rows, s, batch_id, ingest_time) for s in self.schemas if valid[s]]
            writes += [pool.submit(write_quarantine, rows, s, batch_id, ingest_time) for s in self.schemas if quarantined[s]]
            for write in writes:
                write.result()

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        self.running = batch_id
        self.idle.clear()
        try:
            self._write(batch, batch_id)
            self.finished = batch_id
        finally:
            self.running = None
            self.idle.set()

    def _write(self, batch: DataFrame, batch_id: int) -> None:
        started = time.monotonic()
        ingest_time = datetime.now(timezone.utc)
        rows = self.classify(batch).persist(StorageLevel.MEMORY_AND_DISK)
        try:
            partitions = (
                rows.groupBy("kafka_topic", "kafka_partition")
                .agg(
                    F.count("*").alias("consumed"),
                    F.count(F.when(F.col("reason").isNull(), 1)).alias("valid"),
                    F.min("kafka_offset").alias("first"),
                    F.max("kafka_offset").alias("last"),
                    F.expr("min(unix_millis(kafka_timestamp))").alias("oldest_ms"),
                )
                .collect()
            )
            source_of = {t: s for s, t in self.topics.items()}
            valid = dict.fromkeys(self.schemas, 0)
            quarantined = dict.fromkeys(self.schemas, 0)
            offsets: dict[str, dict[str, dict[str, int]]] = {}
            for p in partitions:
                source = source_of[p.kafka_topic]
                valid[source] += p.valid
                quarantined[source] += p.consumed - p.valid
                offsets.setdefault(p.kafka_topic, {})[str(p.kafka_partition)] = {"start": p.first, "end": p.last + 1}
            for attempt in (1, 2):
                try:
                    self._write_files(rows, batch_id, ingest_time, valid, quarantined)
                    break
                except Exception:
                    # A stop signal sent to the whole process group also kills the helpers that
                    # Hadoop's local file system forks (chmod) at that instant. The writes are
                    # idempotent, so the batch is written once more rather than abandoned.
                    if attempt == 2 or not self.stopping.is_set() or self.abandoning:
                        raise
                    log(f"batch {batch_id}: a write failed while stopping; writing the batch again")
        finally:
            rows.unpersist()
        oldest = min((p.oldest_ms for p in partitions), default=None)
        progress = {
            "batch_id": batch_id,
            "ingest_time": ingest_time.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "duration_ms": round((time.monotonic() - started) * 1000),
            "consumed": sum(p.consumed for p in partitions),
            "valid": valid,
            "quarantined": quarantined,
            "offsets": offsets,
            "freshness_ms": None if oldest is None else round(ingest_time.timestamp() * 1000) - oldest,
        }
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
    # A killed batch leaves its dynamic-overwrite staging folder behind; its replay writes anew.
    for root in (args.raw_root, args.quarantine_root):
        for source in schemas:
            for stale in fs.glob(join(root, source, ".spark-staging-*")):
                fs.delete(stale)
    stop = threading.Event()
    install_stop_handlers(spark, stop)

    reader = (
        spark.readStream.format("kafka")
        .options(**options)
        .option("subscribe", ",".join(topics.values()))
        .option("startingOffsets", args.starting_offsets)
    )
    if args.max_offsets_per_trigger:
        reader = reader.option("maxOffsetsPerTrigger", args.max_offsets_per_trigger)
    batch_writer = BatchWriter(schemas, topics, args.lake_root, fs, args.progress_file, args.max_record_bytes, stop, args.raw_root, args.quarantine_root)
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
