"""The stream benchmark's references: the same Kafka topics → Parquet with nothing in between but
the layout, on the same trigger, session settings and progress-line clock as stream_ingest.

- `--layout partitioned` (the reference): every record's value bytes and Kafka columns under
  `<lake-root>/bare/source=S/date=D/hour=H/batch_id=N/`, the date and hour cut from the record's
  eventTime (get_json_object, no validation: a record without one lands in Hive's null
  partition). One dynamic-overwrite write per micro-batch, so a replayed batch replaces its own
  files, as stream_ingest's do.
- `--layout flat` (the floor): value bytes into one folder through Spark's file sink.

One JSON line per micro-batch goes to the progress file, in stream_ingest's shape where the jobs
share a meaning (batch_id, ingest_time, duration_ms, consumed, offsets, phases). consumed and
offsets come from Spark's own progress reports so that the copy pays no count for them.
duration_ms is the time inside foreachBatch, measured as stream_ingest measures its own; the flat
copy has no foreachBatch and reports Spark's addBatch (the sink's time) and visible_time, when the
trigger and so the file sink's commit ended.

    spark-submit --jars <kafka jars> spark/jobs/bare_copy.py --lake-root /tmp/bench --topic vehicle=t1 …
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

try:
    import smartcity_spark  # noqa: F401  (shipped with --py-files on a cluster)
except ImportError:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from smartcity_spark.runtime import LakeFS, iso_utc, join, session


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bare_copy.py", description="Kafka records → Parquet, nothing else but the layout.")
    p.add_argument("--lake-root", required=True, help="the copy lands in <lake-root>/bare")
    p.add_argument("--layout", choices=["partitioned", "flat"], default="partitioned", help="default: %(default)s")
    p.add_argument("--checkpoint", help="default: <lake-root>/checkpoints/bare_copy")
    p.add_argument("--progress-file", help="default: <lake-root>/_progress/bare_copy.jsonl")
    p.add_argument("--brokers", default="127.0.0.1:9092")
    p.add_argument("--topic", action="append", required=True, metavar="SOURCE=TOPIC", help="repeatable")
    p.add_argument("--starting-offsets", choices=["earliest", "latest"], default="earliest")
    p.add_argument("--max-offsets-per-trigger", type=int)
    p.add_argument("--trigger-seconds", type=float, default=10.0)
    args = p.parse_args(argv)
    args.checkpoint = args.checkpoint or join(args.lake_root, "checkpoints", "bare_copy")
    args.progress_file = args.progress_file or join(args.lake_root, "_progress", "bare_copy.jsonl")
    return args


class PartitionedCopy:
    """The foreachBatch function of the partitioned layout; remembers each batch's timing until
    Spark's progress report of that batch supplies its counts."""

    def __init__(self, topics: dict[str, str], root: str):
        self.source_of_topic = F.create_map(*[F.lit(x) for source, topic in topics.items() for x in (topic, source)])
        self.root = root
        self.timings: dict[int, dict] = {}

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        started = time.monotonic()
        ingest_time = datetime.now(timezone.utc)
        event_time = F.get_json_object(F.col("value").cast("string"), "$.eventTime")
        writer = (
            batch.select(
                "value",
                F.col("topic").alias("kafka_topic"),
                F.col("partition").alias("kafka_partition"),
                F.col("offset").alias("kafka_offset"),
                F.col("timestamp").alias("kafka_timestamp"),
                self.source_of_topic[F.col("topic")].alias("source"),
                F.substring(event_time, 1, 10).alias("date"),
                F.substring(event_time, 12, 2).alias("hour"),
                F.lit(batch_id).alias("batch_id"),
            )
            .write.mode("overwrite")
            .option("partitionOverwriteMode", "dynamic")
            .partitionBy("source", "date", "hour", "batch_id")
        )
        planned = time.monotonic()
        writer.parquet(self.root)
        done = time.monotonic()
        self.timings[batch_id] = {
            "ingest_time": iso_utc(ingest_time),
            "duration_ms": round((done - started) * 1000),
            "phases": {"plan": round((planned - started) * 1000), "write": round((done - planned) * 1000)},
        }


def offsets_of(progress: dict) -> dict:
    source = progress["sources"][0]
    start, end = source["startOffset"] or {}, source["endOffset"]
    offsets = {
        topic: {p: {"start": start.get(topic, {}).get(p, 0), "end": last} for p, last in partitions.items() if last > start.get(topic, {}).get(p, 0)}
        for topic, partitions in end.items()
    }
    return {t: o for t, o in offsets.items() if o}


def flat_line(progress: dict) -> dict:
    """A flat copy's batch from Spark's progress report alone."""
    started = datetime.fromisoformat(progress["timestamp"].replace("Z", "+00:00"))
    durations = progress["durationMs"]
    return {
        "batch_id": progress["batchId"],
        "ingest_time": progress["timestamp"],
        "duration_ms": durations["addBatch"],
        "visible_time": iso_utc(started + timedelta(milliseconds=durations["triggerExecution"])),
        "consumed": progress["numInputRows"],
        "offsets": offsets_of(progress),
        "phases": {"write": durations["addBatch"]},
    }


def main() -> int:
    args = parse_args(sys.argv[1:])
    spark = session("smartcity-bare-copy")
    topics = dict(pair.partition("=")[::2] for pair in args.topic)
    reader = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", args.brokers)
        .option("subscribe", ",".join(topics.values()))
        .option("startingOffsets", args.starting_offsets)
    )
    if args.max_offsets_per_trigger:
        reader = reader.option("maxOffsetsPerTrigger", args.max_offsets_per_trigger)
    stream = reader.load()
    copy = None
    if args.layout == "partitioned":
        copy = PartitionedCopy(topics, join(args.lake_root, "bare"))
        writer = stream.writeStream.foreachBatch(copy)
    else:
        writer = stream.select("value").writeStream.format("parquet").option("path", join(args.lake_root, "bare"))
    query = writer.option("checkpointLocation", args.checkpoint).trigger(processingTime=f"{args.trigger_seconds} seconds").start()
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    fs = LakeFS(spark)
    reported = -1
    while not stop.is_set() and query.isActive:
        query.awaitTermination(0.5)
        # Reports without addBatch are the idle ones Spark emits while there is no new data.
        for progress in query.recentProgress:
            batch_id = progress["batchId"]
            if batch_id <= reported or "addBatch" not in progress["durationMs"]:
                continue
            if copy is None:
                line = flat_line(progress)
            else:
                line = {"batch_id": batch_id, **copy.timings.pop(batch_id), "consumed": progress["numInputRows"], "offsets": offsets_of(progress)}
            fs.append_line(args.progress_file, json.dumps(line, separators=(",", ":")))
            reported = batch_id
    query.stop()
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
