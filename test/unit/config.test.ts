import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, loadConfig, redactConfig } from '../../config';

describe('configuration', () => {
  test('defaults describe the local target on the documented ports', () => {
    const config = loadConfig({});
    assert.equal(config.target, 'local');
    assert.deepEqual(config.ports, { temporal: 7233, temporalUi: 8233, kafka: 9092, kafkaController: 9093 });
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

  test('two components on one port are refused', () => {
    assert.throws(() => loadConfig({ SMARTCITY_KAFKA_PORT: '7233' }), /ports must differ/);
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
});
