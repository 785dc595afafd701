"""The jobs' aws options (no Spark): one root per layer, the Kafka SASL secret read from Secrets
Manager by the job itself, and Glue-style names for the curate job."""
from __future__ import annotations

import sys
import types

import pytest

from jobs import curate, stream_ingest
from jobs.stream_ingest import kafka_options, kafka_secret

SECRET_ARN = "arn:aws:secretsmanager:eu-west-2:123456789012:secret:smartcity-kafka-AbCdEf"


class FakeSecrets:
    def __init__(self, secret_string):
        self.secret_string = secret_string
        self.asked = []

    def get_secret_value(self, SecretId):  # noqa: N803 (boto3's parameter name)
        self.asked.append(SecretId)
        return {"SecretString": self.secret_string}


def test_ingest_layer_roots_default_under_the_lake_root():
    args = stream_ingest.parse_args(["--lake-root", "/lake"], {})
    assert (args.raw_root, args.quarantine_root, args.checkpoint) == ("/lake/raw", "/lake/quarantine", "/lake/checkpoints/ingest")


def test_ingest_takes_one_root_per_layer_and_a_secret_id():
    args = stream_ingest.parse_args(
        ["--raw-root", "s3://sc-raw/raw/", "--quarantine-root", "s3://sc-quarantine/quarantine/", "--checkpoint", "s3://sc-checkpoints/checkpoints/ingest/",
         "--kafka-secret-id", SECRET_ARN],
        {},
    )
    assert (args.raw_root, args.quarantine_root) == ("s3://sc-raw/raw/", "s3://sc-quarantine/quarantine/")
    assert (args.kafka_secret_id, args.kafka_sasl_mechanism) == (SECRET_ARN, "scram-sha-512")


def test_the_kafka_secret_becomes_a_sasl_ssl_jaas_config():
    secrets = FakeSecrets('{"username": "fleet", "password": "s3cr\\"et"}')
    user, password = kafka_secret(SECRET_ARN, secrets)
    assert secrets.asked == [SECRET_ARN]
    options = kafka_options("b-1.msk:9096", [], {}, ("scram-sha-512", user, password))
    assert options["kafka.security.protocol"] == "SASL_SSL"
    assert options["kafka.sasl.mechanism"] == "SCRAM-SHA-512"
    assert options["kafka.sasl.jaas.config"] == 'org.apache.kafka.common.security.scram.ScramLoginModule required username="fleet" password="s3cr\\"et";'


def test_the_secret_wins_over_the_environment_settings():
    env = {"SMARTCITY_KAFKA_SASL_MECHANISM": "plain", "SMARTCITY_KAFKA_SASL_USERNAME": "local", "SMARTCITY_KAFKA_SASL_PASSWORD": "x", "SMARTCITY_KAFKA_SSL": "false"}
    options = kafka_options("b:9096", [], env, ("scram-sha-256", "fleet", "pw"))
    assert options["kafka.security.protocol"] == "SASL_SSL"
    assert 'username="fleet"' in options["kafka.sasl.jaas.config"]


@pytest.mark.parametrize("secret_string", ["not json {hunter2", '{"username": "fleet"}', '["hunter2"]'])
def test_a_malformed_secret_is_one_clear_error_that_never_shows_its_value(secret_string):
    with pytest.raises(SystemExit) as failure:
        kafka_secret(SECRET_ARN, FakeSecrets(secret_string))
    assert SECRET_ARN in str(failure.value)
    assert "hunter2" not in str(failure.value)


def test_curate_layer_roots_default_under_the_lake_root():
    args = curate.parse_args(["--lake-root", "/lake", "--from", "2026-03-02T10:00:00Z", "--to", "2026-03-02T11:00:00Z"], {})
    assert (args.raw_root, args.curated_root) == ("/lake/raw", "/lake/curated")


def test_curate_under_glue_takes_layer_roots_without_a_lake_root(monkeypatch):
    def get_resolved_options(argv, names):
        pairs = dict(zip(argv[1::2], argv[2::2]))
        missing = [n for n in names if f"--{n}" not in pairs]
        if missing:
            raise SystemExit(f"missing {missing}")
        return {name: pairs[f"--{name}"] for name in names}

    glue = types.ModuleType("awsglue")
    glue.utils = types.SimpleNamespace(getResolvedOptions=get_resolved_options)
    monkeypatch.setitem(sys.modules, "awsglue", glue)
    monkeypatch.setitem(sys.modules, "awsglue.utils", glue.utils)
    summary = "s3://sc-artifacts/_runs/curate/20260302T100000000000Z_20260302T110000000000Z.json"
    args = curate.parse_args(
        ["--JOB_NAME", "smartcity-curate", "--from", "2026-03-02T10:00:00.000Z", "--to", "2026-03-02T11:00:00.000Z", "--raw_root", "s3://sc-raw/raw/",
         "--curated_root", "s3://sc-curated/curated/", "--schemas_dir", "s3://sc-artifacts/spark/schemas/", "--summary_path", summary],
        {},
    )
    assert (args.raw_root, args.curated_root, args.schemas_dir, args.summary_path) == ("s3://sc-raw/raw/", "s3://sc-curated/curated/", "s3://sc-artifacts/spark/schemas/", summary)


def test_the_secret_is_read_in_the_region_its_arn_names(monkeypatch):
    made = []

    def client(service, **kwargs):
        made.append((service, kwargs))
        return FakeSecrets('{"username": "u", "password": "p"}')

    monkeypatch.setitem(sys.modules, "boto3", types.SimpleNamespace(client=client))
    assert kafka_secret(SECRET_ARN) == ("u", "p")
    assert kafka_secret("smartcity/kafka") == ("u", "p")
    assert made == [("secretsmanager", {"region_name": "eu-west-2"}), ("secretsmanager", {})]
