// What reaches a Spark job's environment (spark/runner.ts): an allow-list of the starter's
// environment plus what the job reads; a worker's secrets stay in the worker.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig } from '../../config';
import { sparkJobEnv, type SparkJobSpec } from '../../spark/runner';

const parent: NodeJS.ProcessEnv = {
  PATH: '/usr/bin:/bin',
  HOME: '/home/u',
  LANG: 'C.UTF-8',
  LC_ALL: 'C.UTF-8',
  TMPDIR: '/tmp',
  JAVA_HOME: '/usr/lib/jvm/java-17',
  SPARK_LOCAL_DIRS: '/scratch',
  HADOOP_USER_NAME: 'etl',
  SMARTCITY_TEMPORAL_API_KEY: 'tmprl-api-key-do-not-leak',
  SMARTCITY_KAFKA_SASL_PASSWORD: 'producer-password',
  GITHUB_TOKEN: 'ghp_do_not_leak',
  AWS_PROFILE: 'lake',
  AWS_SECRET_ACCESS_KEY: 'not-for-a-local-job',
  NODE_OPTIONS: '--inspect',
};
const local = loadConfig({ SMARTCITY_DATA_DIR: '/srv/smartcity' });
const ingest: SparkJobSpec = { name: 'ingest', job: 'stream_ingest' };
const curate: SparkJobSpec = { name: 'curate', job: 'curate', args: { from: '2026-03-02T07:00:00Z', to: '2026-03-02T08:00:00Z' } };

describe('a Spark job\'s environment', () => {
  test('keeps the system basics and the Java, Spark and Hadoop settings; drops everything else', () => {
    const env = sparkJobEnv(local, curate, 'local[2]', parent);
    for (const name of ['PATH', 'HOME', 'LANG', 'LC_ALL', 'TMPDIR', 'JAVA_HOME', 'SPARK_LOCAL_DIRS', 'HADOOP_USER_NAME']) assert.equal(env[name], parent[name], name);
    for (const name of ['SMARTCITY_TEMPORAL_API_KEY', 'SMARTCITY_KAFKA_SASL_PASSWORD', 'GITHUB_TOKEN', 'AWS_PROFILE', 'AWS_SECRET_ACCESS_KEY', 'NODE_OPTIONS']) {
      assert.equal(env[name], undefined, `${name} must not reach the job`);
    }
    assert.equal(env.SMARTCITY_DATA_DIR, '/srv/smartcity');
    assert.match(env.PYSPARK_PYTHON ?? '', /venv\/bin\/python$/);
  });

  test('Kafka settings go to the job that reads Kafka, from the config, not from the parent', () => {
    const sasl = loadConfig({ SMARTCITY_KAFKA_SASL_MECHANISM: 'scram-sha-512', SMARTCITY_KAFKA_SASL_USERNAME: 'ingest', SMARTCITY_KAFKA_SASL_PASSWORD: 'from-config' });
    const env = sparkJobEnv(sasl, ingest, 'local[2]', parent);
    assert.deepEqual([env.SMARTCITY_KAFKA_SSL, env.SMARTCITY_KAFKA_SASL_MECHANISM, env.SMARTCITY_KAFKA_SASL_USERNAME, env.SMARTCITY_KAFKA_SASL_PASSWORD], ['true', 'scram-sha-512', 'ingest', 'from-config']);
    const curateEnv = sparkJobEnv(sasl, curate, 'local[2]', parent);
    assert.equal(curateEnv.SMARTCITY_KAFKA_SASL_PASSWORD, undefined, 'curate reads no Kafka: no Kafka password');
  });

  test('the AWS credential chain reaches a job only when it touches s3:// paths', () => {
    const s3 = loadConfig({ SMARTCITY_LAKE_ROOT: 's3://lake-bucket/smartcity' });
    const env = sparkJobEnv(s3, curate, 'local[2]', parent);
    assert.equal(env.AWS_PROFILE, 'lake');
    assert.equal(env.AWS_SECRET_ACCESS_KEY, 'not-for-a-local-job');
    assert.equal(env.SMARTCITY_TEMPORAL_API_KEY, undefined);
    assert.equal(sparkJobEnv(local, { ...ingest, args: { progressFile: 's3://b/_progress/ingest.jsonl' } }, 'local[2]', parent).AWS_PROFILE, 'lake');
  });

  test('a driver binds to loopback for local and loopback cluster masters only', () => {
    assert.equal(sparkJobEnv(local, curate, 'local[2]', parent).SPARK_LOCAL_IP, '127.0.0.1');
    assert.equal(sparkJobEnv(local, curate, 'spark://127.0.0.1:7077', parent).SPARK_LOCAL_IP, '127.0.0.1');
    assert.equal(sparkJobEnv(local, curate, 'spark://localhost:7077', parent).SPARK_LOCAL_IP, '127.0.0.1');
    assert.equal(sparkJobEnv(local, curate, 'spark://spark-master:7077', parent).SPARK_LOCAL_IP, undefined, 'executors elsewhere must reach the driver');
    assert.equal(sparkJobEnv(local, curate, 'spark://spark-master:7077', { ...parent, SPARK_LOCAL_IP: '10.0.0.5' }).SPARK_LOCAL_IP, '10.0.0.5');
  });

  test('the spec\'s own env is added last', () => {
    assert.equal(sparkJobEnv(local, { ...curate, env: { SPARK_CONF_DIR: '/etc/spark' } }, 'local[2]', parent).SPARK_CONF_DIR, '/etc/spark');
  });
});
