import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig, redactConfig } from '../../config';
import { AWS_TEST_ENV } from '../helpers/aws-mock';

describe('configuration', () => {
  test('defaults describe the local target on the documented ports', () => {
    const config = loadConfig({});
    assert.equal(config.target, 'local');
    assert.deepEqual(config.ports, { temporal: 7233, temporalUi: 8233, kafka: 9092, kafkaController: 9093, sparkMaster: 7077, sparkMasterUi: 8080, sparkWorkerUi: 8081, sparkConnect: 15002, sparkConnectUi: 4050 });
    assert.deepEqual(config.kafka.brokers, ['127.0.0.1:9092']);
    assert.equal(config.temporal.uiUrl, 'http://localhost:8233');
    assert.equal(config.kafka.ssl, false);
  });

  test('ports move the derived addresses with them', () => {
    const config = loadConfig({ SMARTCITY_KAFKA_PORT: '19092', SMARTCITY_TEMPORAL_PORT: '17233' });
    assert.deepEqual(config.kafka.brokers, ['127.0.0.1:19092']);
    assert.equal(config.temporal.address, '127.0.0.1:17233');
  });

  test('an unknown setting is an error naming it', () => {
    assert.throws(() => loadConfig({ SMARTCITY_KAFKA_BROKER: 'x:1' }), (err: Error) => err instanceof ConfigError && /unknown setting SMARTCITY_KAFKA_BROKER;/.test(err.message));
  });

  test('a malformed value is an error naming the variable', () => {
    assert.throws(() => loadConfig({ SMARTCITY_KAFKA_PORT: 'ninety' }), /SMARTCITY_KAFKA_PORT="ninety" is not a number/);
    assert.throws(() => loadConfig({ SMARTCITY_TEMPORAL_UI_PORT: '70000' }), /SMARTCITY_TEMPORAL_UI_PORT: .*65535/);
    assert.throws(() => loadConfig({ SMARTCITY_TARGET: 'gcp' }), /SMARTCITY_TARGET: /);
    assert.throws(() => loadConfig({ SMARTCITY_KAFKA_SSL: 'maybe' }), /SMARTCITY_KAFKA_SSL="maybe": expected true or false/);
  });

  test('the Spark master is local[2] unless set to local[N] or a standalone master', () => {
    assert.equal(loadConfig({}).spark.master, 'local[2]');
    assert.equal(loadConfig({ SMARTCITY_SPARK_MASTER: 'spark://spark-master:7077' }).spark.master, 'spark://spark-master:7077');
    assert.throws(() => loadConfig({ SMARTCITY_SPARK_MASTER: 'yarn' }), /SMARTCITY_SPARK_MASTER: must be local\[N\], local\[\*\] or spark:\/\/host:port/);
    // Curate runs on the stack's Spark Connect server unless told otherwise.
    assert.equal(loadConfig({}).spark.connect, true);
    assert.equal(loadConfig({ SMARTCITY_SPARK_CONNECT: 'false' }).spark.connect, false);
    assert.throws(() => loadConfig({ SMARTCITY_SPARK_CONNECT: 'sometimes' }), /SMARTCITY_SPARK_CONNECT/);
  });

  test('two components on one port are refused', () => {
    assert.throws(() => loadConfig({ SMARTCITY_KAFKA_PORT: '7233' }), /ports must differ/);
    // The second Spark worker's UI takes the port after the first's.
    assert.throws(() => loadConfig({ SMARTCITY_SPARK_WORKER_UI_PORT: '8079' }), /ports must differ/);
  });

  test('SMARTCITY_BIND_ADDRESS belongs to docker-compose.yml: the CLI ignores it', () => {
    assert.deepEqual(loadConfig({ SMARTCITY_BIND_ADDRESS: '0.0.0.0' }), loadConfig({}));
  });

  test('SASL takes its secret from the environment only, turns TLS on and is masked in output', () => {
    assert.throws(() => loadConfig({ SMARTCITY_KAFKA_SASL_MECHANISM: 'plain' }), /SMARTCITY_KAFKA_SASL_USERNAME and SMARTCITY_KAFKA_SASL_PASSWORD must be set/);
    const config = loadConfig({ SMARTCITY_KAFKA_SASL_MECHANISM: 'scram-sha-512', SMARTCITY_KAFKA_SASL_USERNAME: 'u', SMARTCITY_KAFKA_SASL_PASSWORD: 'hunter2' });
    assert.deepEqual(config.kafka.sasl, { mechanism: 'scram-sha-512', username: 'u', password: 'hunter2' });
    assert.equal(config.kafka.ssl, true);
    assert.doesNotMatch(JSON.stringify(redactConfig(config)), /hunter2/);
  });

  test('a config file is read, and its unknown keys are errors naming the key', () => {
    const dir = mkdtempSync(join(tmpdir(), 'smartcity-config-'));
    const good = join(dir, 'good.json');
    writeFileSync(good, JSON.stringify({ kafka: { brokers: ['b1:9092', 'b2:9092'], partitions: 6 } }));
    const config = loadConfig({ SMARTCITY_CONFIG: good });
    assert.deepEqual(config.kafka.brokers, ['b1:9092', 'b2:9092']);
    assert.equal(config.kafka.partitions, 6);

    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ kafka: { password: 'no' } }));
    assert.throws(() => loadConfig({ SMARTCITY_CONFIG: bad }), /config key kafka: Unrecognized key: "password"/);
    assert.throws(() => loadConfig({ SMARTCITY_CONFIG: join(dir, 'missing.json') }), /does not exist/);
  });
  describe('the aws target', () => {
    // Every required setting (the aws activity tests use the same environment).
    const complete = AWS_TEST_ENV;

    test('a complete environment gives the aws settings with defaults filled in', () => {
      const config = loadConfig(complete);
      assert.equal(config.target, 'aws');
      assert.equal(config.aws?.region, 'eu-west-2');
      assert.equal(config.aws?.buckets.raw, 'sc-raw');
      assert.equal(config.aws?.redshift.schema, 'public');
      assert.equal(config.aws?.athena.workgroup, 'primary');
      assert.equal(config.aws?.athena.outputLocation, 's3://sc-athena/results/');
      assert.equal(config.aws?.endpoint, undefined);
      assert.equal(loadConfig({}).aws, undefined, 'the local target carries no aws settings');
    });

    test('every missing required setting is named in one error', () => {
      const { SMARTCITY_EMR_CLUSTER_ID: _emr, SMARTCITY_S3_RAW_BUCKET: _raw, SMARTCITY_KAFKA_BROKERS: _brokers, ...partial } = complete;
      assert.throws(
        () => loadConfig(partial),
        (err: Error) =>
          err instanceof ConfigError &&
          /SMARTCITY_S3_RAW_BUCKET/.test(err.message) &&
          /SMARTCITY_EMR_CLUSTER_ID/.test(err.message) &&
          /SMARTCITY_KAFKA_BROKERS/.test(err.message) &&
          !/SMARTCITY_GLUE_DATABASE/.test(err.message),
      );
    });

    test('malformed values name the variable and what is expected', () => {
      assert.throws(() => loadConfig({ ...complete, SMARTCITY_S3_RAW_BUCKET: 's3://sc-raw' }), /SMARTCITY_S3_RAW_BUCKET: must be an S3 bucket name/);
      assert.throws(() => loadConfig({ ...complete, SMARTCITY_AWS_REGION: 'London' }), /SMARTCITY_AWS_REGION: must be an AWS region/);
      assert.throws(() => loadConfig({ ...complete, SMARTCITY_EMR_CLUSTER_ID: 'cluster-1' }), /SMARTCITY_EMR_CLUSTER_ID: must be an EMR cluster id/);
      assert.throws(() => loadConfig({ ...complete, SMARTCITY_REDSHIFT_COPY_ROLE_ARN: 'smartcity-copy' }), /SMARTCITY_REDSHIFT_COPY_ROLE_ARN: must be an ARN/);
    });

    test('Redshift needs exactly one of a Serverless workgroup and a provisioned cluster', () => {
      assert.throws(() => loadConfig({ ...complete, SMARTCITY_REDSHIFT_CLUSTER_ID: 'sc' }), /exactly one of SMARTCITY_REDSHIFT_WORKGROUP .* and SMARTCITY_REDSHIFT_CLUSTER_ID/);
      const { SMARTCITY_REDSHIFT_WORKGROUP: _wg, ...provisioned } = complete;
      assert.throws(() => loadConfig({ ...provisioned, SMARTCITY_REDSHIFT_CLUSTER_ID: 'sc' }), /SMARTCITY_REDSHIFT_SECRET_ARN .* or SMARTCITY_REDSHIFT_DB_USER/);
      const config = loadConfig({ ...provisioned, SMARTCITY_REDSHIFT_CLUSTER_ID: 'sc', SMARTCITY_REDSHIFT_DB_USER: 'loader' });
      assert.equal(config.aws?.redshift.clusterId, 'sc');
      assert.equal(config.aws?.redshift.workgroup, undefined);
    });

    test('the same settings come from the config file under "aws"', () => {
      const dir = mkdtempSync(join(tmpdir(), 'smartcity-config-'));
      const file = join(dir, 'aws.json');
      writeFileSync(
        file,
        JSON.stringify({
          target: 'aws',
          kafka: { brokers: ['b-1:9096'] },
          aws: {
            region: 'eu-west-2',
            buckets: { raw: 'r-1', curated: 'c-1', quarantine: 'q-1', checkpoints: 'k-1', athenaResults: 'a-1', artifacts: 'x-1' },
            glue: { database: 'db', rawCrawler: 'rc', curatedCrawler: 'cc', curateJob: 'cj' },
            emr: { clusterId: 'j-ABC123' },
            redshift: { workgroup: 'wg', database: 'dev', copyRoleArn: 'arn:aws:iam::123456789012:role/copy' },
            athena: { workgroup: 'smartcity', outputLocation: 's3://a-1/out/' },
          },
        }),
      );
      const config = loadConfig({ SMARTCITY_CONFIG: file });
      assert.equal(config.aws?.athena.outputLocation, 's3://a-1/out/');
      assert.equal(config.aws?.glue.curateJob, 'cj');
      assert.throws(() => loadConfig({ SMARTCITY_CONFIG: file, SMARTCITY_AWS_REGION: 'nowhere' }), /SMARTCITY_AWS_REGION/);
    });
  });

  test('Temporal mTLS needs both halves; the API key comes from the environment and is masked', () => {
    const dir = mkdtempSync(join(tmpdir(), 'smartcity-tls-'));
    const cert = join(dir, 'client.pem');
    writeFileSync(cert, 'not really a cert');
    assert.throws(() => loadConfig({ SMARTCITY_TEMPORAL_TLS_CERT: cert }), /SMARTCITY_TEMPORAL_TLS_CERT and SMARTCITY_TEMPORAL_TLS_KEY go together/);
    assert.throws(() => loadConfig({ SMARTCITY_TEMPORAL_TLS_CERT: cert, SMARTCITY_TEMPORAL_TLS_KEY: join(dir, 'missing.key') }), /SMARTCITY_TEMPORAL_TLS_KEY points at .*missing\.key, which does not exist/);
    const config = loadConfig({ SMARTCITY_TEMPORAL_API_KEY: 'secret-key-value', SMARTCITY_TEMPORAL_ADDRESS: 'ns.acct.tmprl.cloud:7233' });
    assert.equal(config.temporal.apiKey, 'secret-key-value');
    assert.doesNotMatch(JSON.stringify(redactConfig(config)), /secret-key-value/);
  });
});
