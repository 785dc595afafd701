// The logger's two formats and what it never writes, plus the settings that choose them.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { ConfigError, loadConfig } from '../../config';
import { configuredSecrets, createLogger, formatLine } from '../../logging';

const ACTIVITY_META = {
  sdkComponent: 'activity',
  isLocal: false,
  attempt: 2,
  namespace: 'default',
  taskToken: 'CiQ2YjYx',
  workflowId: 'smartcity-batch-2026-11-20T07:00:00.000Z-1',
  workflowRunId: '0190-run',
  workflowType: 'batchRun',
  taskQueue: 'smartcity',
  activityId: '3',
  activityType: 'curateWindow',
};

describe('logging', () => {
  test('json: one object with time, level, message, the Temporal context at the top and the rest under attributes', () => {
    const line = formatLine('json', 'WARN', 'Activity failed', { ...ACTIVITY_META, durationMs: 12, message: 'the cause' });
    assert.ok(!line.includes('\n'));
    const r = JSON.parse(line) as Record<string, unknown>;
    assert.deepEqual(Object.keys(r).slice(0, 3), ['time', 'level', 'message']);
    assert.equal(r.level, 'warn');
    assert.equal(r.message, 'Activity failed');
    assert.equal(r.workflowId, ACTIVITY_META.workflowId);
    assert.equal(r.runId, '0190-run', "an activity's workflowRunId is its run id");
    assert.equal(r.activityType, 'curateWindow');
    assert.equal(r.attempt, 2);
    assert.deepEqual(r.attributes, { isLocal: false, taskToken: '[redacted]', durationMs: 12, message: 'the cause' });
  });

  test("the SDK's own timestamp of a forwarded line is its time", () => {
    const line = formatLine('json', 'INFO', 'core says', { [Symbol.for('log_timestamp')]: 1_700_000_000_123_000_000n });
    assert.equal((JSON.parse(line) as { time: string }).time, '2023-11-14T22:13:20.123Z');
  });

  test('errors keep their name, message, stack and cause', () => {
    const err = new Error('outer', { cause: new TypeError('inner') });
    const r = JSON.parse(formatLine('json', 'ERROR', 'failed', { error: err })) as { attributes: { error: { name: string; message: string; stack: string; cause: { name: string } } } };
    assert.equal(r.attributes.error.message, 'outer');
    assert.match(r.attributes.error.stack, /^Error: outer/);
    assert.equal(r.attributes.error.cause.name, 'TypeError');
  });

  test('secrets are never written: secret-named attributes, and configured secret values wherever they appear', () => {
    for (const format of ['json', 'human'] as const) {
      const line = formatLine(format, 'WARN', 'login as u:hunter2 failed', { sasl: { username: 'u', password: 'hunter2' }, apiKey: 'k', error: new Error('bad hunter2') }, ['hunter2']);
      assert.ok(!line.includes('hunter2'), line);
      assert.match(line, format === 'json' ? /"apiKey":"\[redacted\]"/ : /apiKey: '\[redacted\]'/);
    }
    const config = loadConfig({ SMARTCITY_KAFKA_SASL_MECHANISM: 'plain', SMARTCITY_KAFKA_SASL_USERNAME: 'u', SMARTCITY_KAFKA_SASL_PASSWORD: 'pw', SMARTCITY_TEMPORAL_API_KEY: 'key' });
    assert.deepEqual(configuredSecrets(config), ['pw', 'key']);
  });

  test('human: time, [LEVEL], message, then the attributes', () => {
    assert.match(formatLine('human', 'INFO', 'worker polling', undefined), /^\d{4}-\d\d-\d\dT[\d:.]+Z \[INFO\] worker polling$/);
    assert.match(formatLine('human', 'WARN', 'Activity failed', ACTIVITY_META), /\[WARN\] Activity failed \{ workflowId: '.*', runId: '0190-run', workflowType: 'batchRun', activityType: 'curateWindow'/);
  });

  test('lines below the level are dropped', () => {
    const written: string[] = [];
    const log = createLogger({ format: 'json', level: 'WARN', write: (line) => written.push(line) });
    log.info('not this');
    log.debug('nor this');
    log.warn('this');
    assert.deepEqual(written.map((l) => (JSON.parse(l) as { message: string }).message), ['this']);
  });

  test('SMARTCITY_LOG_FORMAT is human by default, json on request, and nothing else', () => {
    assert.equal(loadConfig({}).log.format, 'human');
    assert.equal(loadConfig({ SMARTCITY_LOG_FORMAT: 'json' }).log.format, 'json');
    assert.throws(() => loadConfig({ SMARTCITY_LOG_FORMAT: 'xml' }), (err: Error) => err instanceof ConfigError && /SMARTCITY_LOG_FORMAT/.test(err.message));
  });
});

describe('metrics settings', () => {
  test('the worker serves metrics on 127.0.0.1:9464 by default, on another port, or not at all', () => {
    assert.deepEqual(loadConfig({}).metrics, { port: 9464, host: '127.0.0.1', prometheusPort: 9090 });
    assert.equal(loadConfig({ SMARTCITY_METRICS_PORT: '0' }).metrics.port, 0);
    assert.equal(loadConfig({ SMARTCITY_METRICS_PORT: '19464', SMARTCITY_METRICS_HOST: '0.0.0.0' }).metrics.host, '0.0.0.0');
    assert.throws(() => loadConfig({ SMARTCITY_METRICS_PORT: 'ninety' }), /SMARTCITY_METRICS_PORT="ninety" is not a number/);
    assert.throws(() => loadConfig({ SMARTCITY_METRICS_PORT: '70000' }), /SMARTCITY_METRICS_PORT/);
  });

  test("neither the metrics port nor Prometheus's may take one of the stack's ports, or each other's", () => {
    assert.throws(() => loadConfig({ SMARTCITY_METRICS_PORT: '7233' }), /SMARTCITY_METRICS_PORT=7233 is one of the stack's ports/);
    assert.throws(() => loadConfig({ SMARTCITY_PROMETHEUS_PORT: '9092' }), /SMARTCITY_PROMETHEUS_PORT=9092 is one of the stack's ports/);
    assert.throws(() => loadConfig({ SMARTCITY_PROMETHEUS_PORT: '9464' }), /must differ/);
  });
});
