"""Warms a freshly started Spark Connect server before its first curate.

A new server's first curate takes about twice as long as the next ones (docs/benchmarks.md,
"Backfill"): the JVM compiles Spark's planner, code generator and Parquet paths on first use. This
client runs, on a few hundred synthetic rows, the kinds of work a curate does -- a partitioned
Parquet write, a read with a filter, a window dedupe, a join, an aggregate -- in a scratch folder it
deletes afterwards, under a session of its own. `smartcity demo` and `smartcity start` run it in
the background while the worker and the streaming job start.

    python -m smartcity_spark.warmup SCRATCH_DIR    # with SPARK_REMOTE naming the server
"""
from __future__ import annotations

import shutil
import sys
import time

from pyspark.sql import SparkSession, Window
from pyspark.sql import functions as F


def warm(spark: SparkSession, scratch: str) -> float:
    began = time.monotonic()
    rows = (
        spark.range(0, 600)
        .select(
            F.concat(F.lit("v-"), (F.col("id") % 7).cast("string")).alias("vehicle_id"),
            F.expr("timestamp_seconds(1700000000 + id * 13)").alias("event_time"),
            (F.col("id") % 120).cast("double").alias("speed"),
            F.concat(F.lit("e-"), (F.col("id") % 500).cast("string")).alias("event_id"),
        )
        .withColumn("date", F.to_date("event_time"))
        .withColumn("hour", F.hour("event_time"))
    )
    rows.write.mode("overwrite").partitionBy("date", "hour").parquet(f"{scratch}/raw")
    raw = spark.read.parquet(f"{scratch}/raw").where(F.col("speed") >= 0)
    latest = Window.partitionBy("event_id").orderBy(F.col("event_time").desc())
    deduped = raw.withColumn("n", F.row_number().over(latest)).where("n = 1").drop("n")
    vehicles = deduped.groupBy("vehicle_id").agg(F.avg("speed").alias("avg_speed"))
    curated = deduped.join(vehicles, "vehicle_id", "left")
    curated.repartition(2, "date", "hour").write.mode("overwrite").partitionBy("date", "hour").parquet(f"{scratch}/curated")
    spark.read.parquet(f"{scratch}/curated").groupBy("date", "hour").count().collect()
    return time.monotonic() - began


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m smartcity_spark.warmup SCRATCH_DIR", file=sys.stderr)
        return 2
    scratch = argv[0]
    spark = SparkSession.builder.getOrCreate()
    try:
        took = warm(spark, scratch)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"Spark Connect server warmed in {took:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
