"""The benchmark's reference: the same Kafka topics → Parquet with nothing in between (no parsing,
no validation, no partitioning), on the same trigger as stream_ingest. What the ingest job costs
beyond this is what its checks and layout cost.

It appends one JSON line per micro-batch to the progress file, in stream_ingest's shape where the
two jobs share a meaning (batch_id, ingest_time, duration_ms, consumed, offsets), taken from
Spark's own progress reports so that the copy pays nothing extra for them. duration_ms is the
sink's time (addBatch), as stream_ingest's is its foreachBatch's; visible_time is when the
trigger, and so the file sink's commit, ended.

    spark-submit --jars <kafka jars> spark/jobs/bare_copy.py --lake-root /tmp/bench --topic vehicle=t1 …
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from datetime import datetime, timedelta

from pyspark.sql import SparkSession


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bare_copy.py", description="Kafka value bytes → Parquet, nothing else.")
    p.add_argument("--lake-root", required=True, help="the copy lands in <lake-root>/bare")
    p.add_argument("--checkpoint", help="default: <lake-root>/checkpoints/bare_copy")
    p.add_argument("--progress-file", help="default: <lake-root>/_progress/bare_copy.jsonl (local only)")
    p.add_argument("--brokers", default="127.0.0.1:9092")
    p.add_argument("--topic", action="append", required=True, metavar="SOURCE=TOPIC", help="repeatable; the source name is ignored")
    p.add_argument("--starting-offsets", choices=["earliest", "latest"], default="earliest")
    p.add_argument("--max-offsets-per-trigger", type=int)
    p.add_argument("--trigger-seconds", type=float, default=10.0)
    args = p.parse_args(argv)
    args.checkpoint = args.checkpoint or f"{args.lake_root}/checkpoints/bare_copy"
    args.progress_file = args.progress_file or f"{args.lake_root}/_progress/bare_copy.jsonl"
    return args


def progress_line(progress: dict) -> str:
    """A Spark progress report as a stream_ingest-style line."""
    started = datetime.fromisoformat(progress["timestamp"].replace("Z", "+00:00"))
    durations = progress["durationMs"]
    source = progress["sources"][0]
    start, end = source["startOffset"] or {}, source["endOffset"]
    offsets = {
        topic: {p: {"start": start.get(topic, {}).get(p, 0), "end": last} for p, last in partitions.items() if last > start.get(topic, {}).get(p, 0)}
        for topic, partitions in end.items()
    }
    return json.dumps(
        {
            "batch_id": progress["batchId"],
            "ingest_time": progress["timestamp"],
            "duration_ms": durations["addBatch"],
            "visible_time": (started + timedelta(milliseconds=durations["triggerExecution"])).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
            "consumed": progress["numInputRows"],
            "offsets": {t: o for t, o in offsets.items() if o},
        },
        separators=(",", ":"),
    )


def main() -> int:
    args = parse_args(sys.argv[1:])
    spark = SparkSession.builder.appName("smartcity-bare-copy").getOrCreate()
    topics = [pair.partition("=")[2] for pair in args.topic]
    reader = (
        spark.readStream.format("kafka")
        .option("kafka.bootstrap.servers", args.brokers)
        .option("subscribe", ",".join(topics))
        .option("startingOffsets", args.starting_offsets)
    )
    if args.max_offsets_per_trigger:
        reader = reader.option("maxOffsetsPerTrigger", args.max_offsets_per_trigger)
    query = (
        reader.load()
        .select("value")
        .writeStream.format("parquet")
        .option("path", f"{args.lake_root}/bare")
        .option("checkpointLocation", args.checkpoint)
        .trigger(processingTime=f"{args.trigger_seconds} seconds")
        .start()
    )
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    os.makedirs(os.path.dirname(os.path.abspath(args.progress_file)), exist_ok=True)
    reported = -1
    with open(args.progress_file, "a", encoding="utf-8") as out:
        while not stop.is_set() and query.isActive:
            query.awaitTermination(0.5)
            # Reports without addBatch are the idle ones Spark emits while there is no new data.
            for progress in query.recentProgress:
                if progress["batchId"] > reported and "addBatch" in progress["durationMs"]:
                    out.write(progress_line(progress) + "\n")
                    out.flush()
                    reported = progress["batchId"]
    query.stop()
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
