"""Fixtures: one SparkSession for the batch tests, a Kafka helper (topics of their own per test, made
with the JVM admin client; records produced with Spark's batch Kafka sink) and a runner for the
streaming job as a real spark-submit process."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import pyspark
import pytest
from pyspark.sql import SparkSession

SPARK_DIR = Path(__file__).resolve().parents[1]
REPO = SPARK_DIR.parent
sys.path.insert(0, str(SPARK_DIR))

from jobs.stream_ingest import BatchWriter, default_brokers  # noqa: E402
from smartcity_spark.lakehouse import EXTENSIONS  # noqa: E402
from smartcity_spark.runtime import SQL_CONF, LakeFS, ship_package  # noqa: E402
from smartcity_spark.schemas import default_schemas_dir, load_schemas, read_schema_dir  # noqa: E402
from smartcity_spark.validation import MIB  # noqa: E402

JARS = ",".join(str(p) for folder in ("spark-jars", "iceberg") for p in sorted((REPO / ".tools" / folder).glob("*.jar")))
LOG4J = f"-Dlog4j2.configurationFile=file:{SPARK_DIR / 'log4j2.properties'}"
SPARK_SUBMIT = str(Path(sys.executable).parent / "spark-submit")
# Test topics accept records above the job's 1 MB default so the oversized case can be sent.
TOPIC_MAX_BYTES = 3 * 1024 * 1024

os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
# The in-process session's Python workers run the ingest job's tasks, which need this venv's pyarrow.
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
# PySpark hands timestamps to Python as naive local times; with the process in UTC they read as
# the UTC instants the lake holds.
os.environ["TZ"] = "UTC"
time.tzset()


def spark_env() -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        SPARK_HOME=os.path.dirname(pyspark.__file__),
        PYSPARK_PYTHON=sys.executable,
        PYSPARK_DRIVER_PYTHON=sys.executable,
    )
    return env


@pytest.fixture(scope="session")
def spark():
    if not JARS:
        pytest.fail("no Spark-Kafka jars in .tools/spark-jars: run bash scripts/setup.sh")
    session = (
        SparkSession.builder.master("local[2]")
        .appName("smartcity-spark-tests")
        .config("spark.driver.memory", "1g")
        .config("spark.sql.shuffle.partitions", "4")
        .config("spark.jars", JARS)
        .config("spark.sql.extensions", EXTENSIONS)
        .config("spark.driver.extraJavaOptions", LOG4J)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .getOrCreate()
    )
    for key, value in SQL_CONF.items():
        session.conf.set(key, value)
    ship_package(session)
    yield session
    session.stop()


@pytest.fixture(scope="session")
def schemas():
    return load_schemas(read_schema_dir(default_schemas_dir()))


@pytest.fixture(scope="session")
def land(spark, schemas):
    """Runs the ingest job's batch writer on records as Kafka would deliver them, no broker needed:
    land(lake, [event dict or (source, value bytes), …], batch_id) → the BatchWriter it used."""
    topics = {source: schema.topic for source, schema in schemas.items()}
    offsets = Counter()

    def write(lake: Path, records: list, batch_id: int, max_record_bytes: int = MIB) -> BatchWriter:
        rows = []
        for record in records:
            source, value = (record["source"], json.dumps(record).encode()) if isinstance(record, dict) else record
            topic = topics[source]
            rows.append((topic, 0, offsets[topic], datetime.now(timezone.utc), b"key", bytearray(value)))
            offsets[topic] += 1
        frame = spark.createDataFrame(rows, "topic string, partition int, offset long, timestamp timestamp, key binary, value binary")
        checkpoint = lake / "checkpoints" / "ingest"
        if not (checkpoint / "metadata").exists():
            # What Spark writes when a query first starts.
            checkpoint.mkdir(parents=True)
            (checkpoint / "metadata").write_text(json.dumps({"id": str(uuid.uuid4())}) + "\n")
        roots = {"raw": str(lake / "raw"), "quarantine": str(lake / "quarantine")}
        writer = BatchWriter(schemas, topics, LakeFS(spark), roots=roots, checkpoint=str(checkpoint),
                             progress_file=str(lake / "_progress" / "ingest.jsonl"), max_record_bytes=max_record_bytes)
        writer(frame, batch_id)
        return writer

    return write


@pytest.fixture(scope="session")
def brokers() -> str:
    servers = default_brokers(os.environ)
    host, _, port = servers.split(",")[0].rpartition(":")
    try:
        socket.create_connection((host, int(port)), timeout=3).close()
    except OSError as err:
        pytest.fail(f"no Kafka broker at {servers} ({err}); start the test stack or set SMARTCITY_KAFKA_PORT")
    return servers


class Kafka:
    def __init__(self, spark: SparkSession, brokers: str):
        self.spark = spark
        self.brokers = brokers
        jvm = spark.sparkContext._jvm
        self._jvm = jvm
        props = jvm.java.util.Properties()
        props.put("bootstrap.servers", brokers)
        self._admin = jvm.org.apache.kafka.clients.admin.Admin.create(props)
        self._created: list[str] = []

    def create_topics(self, schemas, partitions: int = 2) -> dict[str, str]:
        """Source → a fresh topic t_<uuid>_<x-topic>."""
        run = uuid.uuid4().hex[:12]
        topics = {source: f"t_{run}_{schema.topic}" for source, schema in schemas.items()}
        jvm = self._jvm
        requests = jvm.java.util.ArrayList()
        for name in topics.values():
            topic = jvm.org.apache.kafka.clients.admin.NewTopic(name, partitions, jvm.java.lang.Short.parseShort("1"))
            configs = jvm.java.util.HashMap()
            configs.put("max.message.bytes", str(TOPIC_MAX_BYTES))
            requests.add(topic.configs(configs))
        self._admin.createTopics(requests).all().get()
        self._created += topics.values()
        return topics

    def produce(self, records: list[tuple[str, str | None, bytes | None]]) -> None:
        """(topic, key, value) records, acknowledged by the broker when this returns."""
        frame = self.spark.createDataFrame(
            [(t, k, bytearray(v) if v is not None else None) for t, k, v in records],
            "topic string, key string, value binary",
        )
        (
            frame.coalesce(1)
            .write.format("kafka")
            .option("kafka.bootstrap.servers", self.brokers)
            .option("kafka.max.request.size", str(TOPIC_MAX_BYTES))
            .option("kafka.acks", "all")
            .save()
        )

    def close(self) -> None:
        if self._created:
            names = self._jvm.java.util.ArrayList()
            for name in self._created:
                names.add(name)
            self._admin.deleteTopics(names).all().get()
        self._admin.close()


@pytest.fixture(scope="session")
def kafka(spark, brokers):
    helper = Kafka(spark, brokers)
    yield helper
    helper.close()


class Ingest:
    """The streaming job as spark-submit runs it, on a lake and topics of a test's own."""

    def __init__(self, lake: Path, topics: dict[str, str], brokers: str, logs: Path):
        self.lake, self.topics, self.brokers, self.logs = lake, topics, brokers, logs
        self.runs = 0

    def command(self, *args: str) -> list[str]:
        return [
            SPARK_SUBMIT,
            "--master", "local[2]",
            "--driver-memory", "1g",
            "--conf", "spark.sql.shuffle.partitions=4",
            "--conf", "spark.ui.enabled=false",
            "--conf", "spark.ui.showConsoleProgress=false",
            "--jars", JARS,
            "--driver-java-options", LOG4J,
            str(SPARK_DIR / "jobs" / "stream_ingest.py"),
            "--lake-root", str(self.lake),
            "--brokers", self.brokers,
            *[f"--topic={source}={topic}" for source, topic in self.topics.items()],
            *args,
        ]

    def start(self, *args: str) -> subprocess.Popen:
        self.runs += 1
        out = open(self.logs / f"ingest-{self.runs}.log", "wb")
        # Own session: a SIGKILL test can take down the JVM and its Python driver together.
        return subprocess.Popen(self.command(*args), stdout=out, stderr=subprocess.STDOUT, env=spark_env(), start_new_session=True)

    def log(self, run: int | None = None) -> str:
        return (self.logs / f"ingest-{run or self.runs}.log").read_text(errors="replace")

    def run(self, *args: str, timeout: float = 240) -> None:
        proc = self.start(*args)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError(f"ingest did not finish in {timeout}s:\n{self.log()[-5000:]}")
        assert rc == 0, f"ingest exited {rc}:\n{self.log()[-5000:]}"

    def progress(self) -> list[dict]:
        path = self.lake / "_progress" / "ingest.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]

    def wait_for_batches(self, proc: subprocess.Popen, count: int, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while len(self.progress()) < count:
            assert proc.poll() is None, f"ingest exited {proc.returncode} early:\n{self.log()[-5000:]}"
            assert time.monotonic() < deadline, f"no {count} batches in {timeout}s:\n{self.log()[-5000:]}"
            time.sleep(0.2)


@pytest.fixture(scope="session")
def new_ingest(kafka, schemas):
    """Makes an Ingest with fresh topics, its lake and logs under a given folder."""

    def make(folder: Path) -> Ingest:
        (folder / "logs").mkdir(parents=True, exist_ok=True)
        return Ingest(folder / "lake", kafka.create_topics(schemas), kafka.brokers, folder / "logs")

    return make

