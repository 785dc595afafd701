// What reaches a Spark job's environment (spark/runner.ts): an allow-list of the starter's
// environment plus what the job reads; a worker's secrets stay in the worker.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { loadConfig } from '../../config';
import { connectSessionId } from '../../spark/connect';
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

describe('a Spark Connect client\'s environment and session', () => {
  const client: SparkJobSpec = { name: 'curate', job: 'curate', connect: true, args: { from: '2026-03-02T07:00:00Z', to: '2026-03-02T08:00:00Z' } };

  test('names the stack\'s server, the job\'s own session and the server\'s UI; keeps the allow-list', () => {
    const env = sparkJobEnv(local, client, 'local[2]', parent);
    assert.equal(env.SPARK_REMOTE, `sc://127.0.0.1:15002/;session_id=${connectSessionId(local, 'curate')}`);
    assert.equal(env.SMARTCITY_SPARK_CONNECT_UI, 'http://127.0.0.1:4050');
    assert.equal(env.SMARTCITY_DATA_DIR, '/srv/smartcity');
    for (const name of ['SMARTCITY_TEMPORAL_API_KEY', 'SMARTCITY_KAFKA_SASL_PASSWORD', 'GITHUB_TOKEN', 'NODE_OPTIONS', 'AWS_SECRET_ACCESS_KEY']) assert.equal(env[name], undefined, name);
  });

  test('a job name has one session id per data dir: the same for a retry, another in another lake', () => {
    const id = connectSessionId(local, 'curate-20260302T0700-20260302T0800');
    assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(connectSessionId(local, 'curate-20260302T0700-20260302T0800'), id);
    assert.notEqual(connectSessionId(local, 'curate-20260302T0800-20260302T0900'), id);
    assert.notEqual(connectSessionId(loadConfig({ SMARTCITY_DATA_DIR: '/srv/other' }), 'curate-20260302T0700-20260302T0800'), id);
  });
});
