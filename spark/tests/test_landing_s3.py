"""The ingest job's landing on an object store, as on EMR: pyarrow's S3 file system against moto's
S3 API on loopback (the suite's server, or one of this module's own)."""
from __future__ import annotations

import os
import socket
import subprocess
import time
import urllib.request
import uuid
from collections import Counter
from datetime import datetime, timezone
from pathlib import Path

import boto3
import pyarrow.parquet as pq
import pytest

import events as E
from smartcity_spark.landing import INPUT_COLUMNS, SUMMARY_SCHEMA, BatchLanding, BatchLayout, LakeDir
from smartcity_spark.validation import MIB, RecordValidator

AWS_ENV = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def _answers(endpoint: str) -> bool:
    try:
        urllib.request.urlopen(f"{endpoint}/moto-api/", timeout=2).close()
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def s3_endpoint():
    shared = os.environ.get("SMARTCITY_TEST_MOTO_ENDPOINT")
    if shared:
        assert _answers(shared), f"SMARTCITY_TEST_MOTO_ENDPOINT={shared} does not answer; is the moto server of scripts/test.sh running?"
        yield shared
        return
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = subprocess.Popen([str(Path(os.sys.executable).parent / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, **AWS_ENV})
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while not _answers(endpoint):
        assert server.poll() is None and time.monotonic() < deadline, "moto_server did not start"
        time.sleep(0.1)
    yield endpoint
    server.terminate()
    server.wait()


@pytest.fixture
def s3(spark, s3_endpoint, monkeypatch):
    """Buckets of this test's own; the driver and the Python workers talk to moto."""
    env = {**AWS_ENV, "AWS_ENDPOINT_URL": s3_endpoint}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    # Python functions carry the context's environment to their workers (a worker pool of its own).
    monkeypatch.setattr(spark.sparkContext, "environment", {**spark.sparkContext.environment, **env})
    client = boto3.client("s3", endpoint_url=s3_endpoint)
    run = uuid.uuid4().hex[:8]
    buckets = {layer: f"smartcity-{run}-{layer}" for layer in ("raw", "quarantine", "checkpoints")}
    for bucket in buckets.values():
        client.create_bucket(Bucket=bucket)

    def keys(layer: str) -> list[str]:
        listed = client.list_objects_v2(Bucket=buckets[layer]).get("Contents", [])
        return sorted(o["Key"] for o in listed)

    return buckets, keys


def test_a_batch_lands_on_s3_under_final_keys_and_an_uncommitted_one_is_deleted(spark, schemas, s3):
    buckets, keys = s3
    topics = {source: schema.topic for source, schema in schemas.items()}
    layout = BatchLayout(schemas, topics, RecordValidator(schemas, topics, MIB),
                         {"raw": f"s3://{buckets['raw']}/raw", "quarantine": f"s3://{buckets['quarantine']}/quarantine"},
                         f"s3://{buckets['checkpoints']}/checkpoints/ingest")
    good = E.journey("s3", vehicles=1, ticks=6)
    records = [(topics[e["source"]], E.encode(e)) for e in good] + [(topics["gps"], b"{not json")]
    now = datetime.now(timezone.utc)
    frame = spark.createDataFrame([(t, 0, i, now, b"k", bytearray(v)) for i, (t, v) in enumerate(records)], "topic string, partition int, offset long, timestamp timestamp, key binary, value binary")

    landing = BatchLanding(spark.sparkContext.broadcast(layout), 5, now, "run-1")
    frame.select(*INPUT_COLUMNS).coalesce(2).mapInArrow(landing, SUMMARY_SCHEMA).collect()

    raw = keys("raw")
    assert raw and all(k.startswith("raw/") and "/batch_id=5/part-" in k and k.endswith("-run-1.parquet") for k in raw), raw
    lake = LakeDir(f"s3://{buckets['raw']}/raw")
    landed = Counter()
    for key in raw:
        source = key.split("/")[1]
        landed[source] += pq.read_table(f"{buckets['raw']}/{key}", filesystem=lake.fs).num_rows
    assert landed == Counter(e["source"] for e in good)
    (rejected,) = keys("quarantine")
    assert rejected.startswith(f"quarantine/gps/date={now:%Y-%m-%d}/batch_id=5/")
    assert all(k.startswith("checkpoints/ingest/ingest-intents/5/") for k in keys("checkpoints"))

    # The job stopped before Spark committed batch 5: a restart deletes exactly what it wrote.
    # (pyarrow leaves a zero-byte folder marker, key ending in "/", where a folder lost its last file.)
    assert layout.discard_uncommitted(lambda batch_id: False) == [5]
    files = lambda layer: [k for k in keys(layer) if not k.endswith("/")]  # noqa: E731
    assert (files("raw"), files("quarantine")) == ([], [])
    assert not [k for k in files("checkpoints") if "/ingest-intents/5/" in k]
