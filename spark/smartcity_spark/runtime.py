"""What the jobs need from Spark besides DataFrames: the lake's session conventions, this package
on the executors, and file operations on lake paths (local or s3://) through Hadoop's FileSystem,
or, for a Spark Connect client (which has no JVM of its own), on local paths through Python.
"""
from __future__ import annotations

import atexit
import glob as globbing
import os
import shutil
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Mapping
from urllib.parse import urlparse

from pyspark import StorageLevel
from pyspark.sql import DataFrame, SparkSession

SQL_CONF = {
    # Event-time partitions and the curated timestamps are UTC whatever the machine's zone is.
    "spark.sql.session.timeZone": "UTC",
    # INT96 is deprecated; micros adjusted to UTC read as timestamptz in DuckDB, Athena, Redshift.
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
    # date=2026-01-01/hour=09 stay the strings they were written as, not a guessed date and int.
    "spark.sql.sources.partitionColumnTypeInference.enabled": "false",
}

REPO_ROOT = Path(__file__).resolve().parents[2]


def session(app_name: str) -> SparkSession:
    # Set after getOrCreate: under Glue the session exists already and builder options are ignored.
    spark = SparkSession.builder.appName(app_name).getOrCreate()
    for key, value in SQL_CONF.items():
        spark.conf.set(key, value)
    return spark


def is_connect(obj: object) -> bool:
    """Whether a session or DataFrame is a Spark Connect client's (by its class, so that a Glue or
    EMR driver, where the Connect client's gRPC modules may be missing, never imports them)."""
    return type(obj).__module__.startswith("pyspark.sql.connect.")


def materialise(frame: DataFrame) -> DataFrame:
    """`frame` computed once and kept, so that later actions do not read its inputs again (which a
    write may be about to replace). A classic session checkpoints it locally; Spark Connect 3.5 has
    no localCheckpoint, so there it is persisted (memory, spilling to disk) until the job ends."""
    if is_connect(frame):
        return frame.persist(StorageLevel.MEMORY_AND_DISK)
    return frame.localCheckpoint()


def ship_package(spark: SparkSession) -> None:
    """Executors import this package for the validation UDF. Submitted with --py-files (EMR, Glue)
    it is there already; run from a checkout, it is zipped and added to the job."""
    package = Path(__file__).resolve().parent
    if not package.is_dir():
        return
    folder = tempfile.mkdtemp(prefix="smartcity-spark-")
    atexit.register(shutil.rmtree, folder, True)
    archive = shutil.make_archive(os.path.join(folder, package.name), "zip", root_dir=package.parent, base_dir=package.name)
    spark.sparkContext.addPyFile(archive)


def default_lake_root(env: Mapping[str, str]) -> str:
    """<data dir>/lake, the data dir resolved as the TypeScript side does (SMARTCITY_DATA_DIR)."""
    data_dir = Path(env.get("SMARTCITY_DATA_DIR") or ".data")
    return str((data_dir if data_dir.is_absolute() else REPO_ROOT / data_dir) / "lake")


def iso_utc(t: datetime) -> str:
    """An aware datetime as the progress lines write instants: ISO-8601 UTC, milliseconds, Z."""
    return t.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def join(root: str, *parts: str) -> str:
    return "/".join([root.rstrip("/"), *parts])


def is_local(path: str) -> bool:
    return urlparse(path).scheme in ("", "file")


# What a progress file on an object store keeps: it cannot be appended to, so every line rewrites it.
KEPT_PROGRESS_LINES = 100


def lake_fs(spark: SparkSession) -> "LakeFS | LocalFS":
    """The file operations of a job's session: Hadoop's through the JVM for a classic session, the
    local file system for a Spark Connect client (local paths only: the local target)."""
    return LocalFS() if is_connect(spark) else LakeFS(spark)


class LocalFS:
    """LakeFS's operations on local paths, for a Spark Connect client, which has no JVM to reach
    Hadoop through. The server writes the same folders, so both see the same files."""

    @staticmethod
    def _local(path: str) -> str:
        if not is_local(path):
            raise ValueError(f"{path}: a Spark Connect job works on local paths only (the local target)")
        return urlparse(path).path if path.startswith("file:") else path

    def exists(self, path: str) -> bool:
        return os.path.exists(self._local(path))

    def glob(self, pattern: str) -> list[str]:
        return sorted(globbing.glob(self._local(pattern)))

    def delete(self, path: str) -> None:
        local = self._local(path)
        if os.path.isdir(local):
            shutil.rmtree(local)
        elif os.path.exists(local):
            os.remove(local)

    def read_text(self, path: str) -> str:
        with open(self._local(path), encoding="utf-8") as f:
            return f.read()

    def write_text(self, path: str, text: str) -> None:
        local = self._local(path)
        os.makedirs(os.path.dirname(os.path.abspath(local)), exist_ok=True)
        with open(local, "w", encoding="utf-8") as f:
            f.write(text)

    def read_json_dir(self, path: str) -> dict[str, str]:
        return {p.rsplit("/", 1)[-1]: self.read_text(p) for p in self.glob(join(path, "*.json"))}


class LakeFS:
    """Hadoop FileSystem calls through the JVM, so s3:// and local paths behave the same."""

    def __init__(self, spark: SparkSession):
        self._jvm = spark.sparkContext._jvm
        self._conf = spark.sparkContext._jsc.hadoopConfiguration()

    def _resolve(self, path: str):
        jpath = self._jvm.org.apache.hadoop.fs.Path(path)
        return jpath.getFileSystem(self._conf), jpath

    def exists(self, path: str) -> bool:
        fs, jpath = self._resolve(path)
        return fs.exists(jpath)

    def glob(self, pattern: str) -> list[str]:
        fs, jpath = self._resolve(pattern)
        found = fs.globStatus(jpath)
        return sorted(status.getPath().toString() for status in found) if found is not None else []

    def delete(self, path: str) -> None:
        fs, jpath = self._resolve(path)
        fs.delete(jpath, True)

    def read_text(self, path: str) -> str:
        fs, jpath = self._resolve(path)
        buffer = self._jvm.java.io.ByteArrayOutputStream()
        self._jvm.org.apache.hadoop.io.IOUtils.copyBytes(fs.open(jpath), buffer, 65536, True)
        return buffer.toString("UTF-8")

    def write_text(self, path: str, text: str) -> None:
        fs, jpath = self._resolve(path)
        out = fs.create(jpath, True)
        try:
            out.write(bytearray(text.encode("utf-8")))
        finally:
            out.close()

    def append_line(self, path: str, line: str) -> None:
        if is_local(path):
            local = urlparse(path).path if path.startswith("file:") else path
            os.makedirs(os.path.dirname(os.path.abspath(local)), exist_ok=True)
            with open(local, "a", encoding="utf-8") as f:
                f.write(line + "\n")
            return
        # Object stores cannot append: the file is rewritten with the newest lines only, so its
        # size stays bounded and its last complete line is always the latest.
        previous = self.read_text(path).splitlines() if self.exists(path) else []
        kept = [*[p for p in previous if p.strip()], line][-KEPT_PROGRESS_LINES:]
        self.write_text(path, "\n".join(kept) + "\n")

    def read_json_dir(self, path: str) -> dict[str, str]:
        """{file name: text} of the *.json files in a folder (the schema folder)."""
        return {p.rsplit("/", 1)[-1]: self.read_text(p) for p in self.glob(join(path, "*.json"))}
