// What a real `smartcity worker` writes to stderr, in both log formats. The scenario is a real
// failure an operator would look for in the logs: the worker cannot find its Spark tools (an empty
// tools folder), so the streaming supervisor's startStreamingJob activity fails (the SDK logs each
// failed attempt with the activity's context) and the supervisor logs the crash (with the
// workflow's context). JSON: every line is one object with time, level and message, the activity
// and workflow lines carry workflowId, runId and activityType, and no secret appears — the Kafka
// SASL password given to this worker is used (its metrics' Kafka client fails to log in) but never
// written. Human: the default, plain lines. The CLI's errors follow the same setting.
import { before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../../config';
import { connectClient } from '../../temporal/connection';
import { streamingSupervisor } from '../../workflows';
import { runCli } from '../helpers/cli';
import { NotYet, until } from '../helpers/until';
import { startWorkerProcess } from '../helpers/worker-process';

const offset = Number(process.env.SMARTCITY_TEST_PORT_OFFSET ?? 0);
const config = loadConfig();
const PASSWORD = `pw-${randomUUID()}`;
const NO_TEMPORAL = '127.0.0.1:1';

interface Run {
  stderr: string;
  workflowId: string;
  runId: string;
}

/** Runs a worker with `env` until the supervisor it was given has logged a crash; returns what it wrote. */
async function failingSupervisorRun(env: NodeJS.ProcessEnv): Promise<Run> {
  const dataDir = join(config.dataDir, `logs-${randomUUID()}`);
  const toolsDir = join(dataDir, 'no-tools');
  mkdirSync(toolsDir, { recursive: true });
  const taskQueue = `logs-${randomUUID()}`;
  const worker = await startWorkerProcess({ SMARTCITY_DATA_DIR: dataDir, SMARTCITY_TOOLS_DIR: toolsDir, SMARTCITY_TASK_QUEUE: taskQueue, ...env });
  const { client, close } = await connectClient(config);
  try {
    const workflowId = `logs-supervisor-${randomUUID()}`;
    const handle = await client.workflow.start(streamingSupervisor, {
      taskQueue,
      workflowId,
      args: [{ jobName: `logs-${randomUUID().slice(0, 8)}`, initialBackoffSeconds: 60 }],
    });
    await until(
      'the supervisor to log a crash',
      () => {
        if (worker.stderr().includes('streaming job crashed')) return true;
        throw new NotYet(`stderr:\n${worker.stderr()}`);
      },
      { timeoutMs: 180_000 },
    );
    await handle.terminate('the logs test has seen what it needs');
    return { stderr: worker.stderr(), workflowId, runId: handle.firstExecutionRunId };
  } finally {
    assert.equal(await worker.stop(), 0, worker.stderr());
    await close();
  }
}

const lines = (text: string) => text.split('\n').filter((l) => l.trim() !== '');

describe('worker and CLI logs', { timeout: 10 * 60_000 }, () => {
  describe('SMARTCITY_LOG_FORMAT=json', () => {
    let run: Run;
    let records: Record<string, unknown>[];

    before(async () => {
      run = await failingSupervisorRun({
        SMARTCITY_LOG_FORMAT: 'json',
        SMARTCITY_METRICS_PORT: String(29466 + offset),
        SMARTCITY_KAFKA_SASL_MECHANISM: 'plain',
        SMARTCITY_KAFKA_SASL_USERNAME: 'logs-test',
        SMARTCITY_KAFKA_SASL_PASSWORD: PASSWORD,
      });
      records = lines(run.stderr).map((line) => {
        try {
          return JSON.parse(line) as Record<string, unknown>;
        } catch {
          return assert.fail(`not a JSON line: ${line}`);
        }
      });
    });

    test('every line is one JSON object with time, level and message', () => {
      assert.ok(records.length >= 4);
      for (const r of records) {
        assert.match(String(r.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
        assert.ok(['trace', 'debug', 'info', 'warn', 'error'].includes(String(r.level)), JSON.stringify(r));
        assert.equal(typeof r.message, 'string');
      }
      assert.ok(records.some((r) => r.level === 'info' && String(r.message).startsWith('worker polling task queue')));
    });

    test("an activity's lines carry its workflow id, run id and activity type", () => {
      const failed = records.filter((r) => r.message === 'Activity failed' && r.workflowId === run.workflowId);
      assert.ok(failed.length >= 1, 'the failed attempts are logged');
      for (const r of failed) {
        assert.equal(r.level, 'warn');
        assert.equal(r.activityType, 'startStreamingJob');
        assert.equal(r.runId, run.runId);
        assert.match(JSON.stringify(r.attributes), /MissingToolError/);
      }
    });

    test("a workflow's lines carry its workflow id and run id", () => {
      const crash = records.find((r) => String(r.message).startsWith('streaming job crashed'));
      assert.ok(crash);
      assert.equal(crash.workflowId, run.workflowId);
      assert.equal(crash.runId, run.runId);
      assert.equal(crash.workflowType, 'streamingSupervisor');
      assert.equal(crash.activityType, undefined);
    });

    test('no secret is written: neither the SASL password the worker used nor the activity task token', () => {
      assert.ok(records.some((r) => String(r.message).startsWith('kafka ') || String(r.message).startsWith('metrics: cannot read kafka')), 'the Kafka client logged its failed login');
      assert.ok(!run.stderr.includes(PASSWORD));
      assert.ok(!/"taskToken":"(?!\[redacted\])/.test(run.stderr));
    });

    test("the CLI's errors are JSON lines too, naming the command", () => {
      const result = runCli(['pipeline', 'status'], { SMARTCITY_LOG_FORMAT: 'json', SMARTCITY_TEMPORAL_ADDRESS: NO_TEMPORAL });
      assert.equal(result.status, 1);
      const [only, ...rest] = lines(result.stderr);
      assert.deepEqual(rest, []);
      const r = JSON.parse(only!) as Record<string, unknown>;
      assert.equal(r.level, 'error');
      assert.equal((r.attributes as Record<string, unknown>).command, 'pipeline');
      assert.match(String(r.message), /^smartcity pipeline: cannot reach Temporal at 127\.0\.0\.1:1/);
    });
  });

  describe('the default, human', () => {
    let run: Run;
    before(async () => {
      run = await failingSupervisorRun({ SMARTCITY_METRICS_PORT: '0' });
    });

    test('lines are for people: time, [LEVEL], message, then the context', () => {
      for (const line of lines(run.stderr)) {
        assert.match(line, /^\d{4}-\d\d-\d\dT[\d:.]+Z \[(TRACE|DEBUG|INFO|WARN|ERROR)\] \S/);
        assert.throws(() => JSON.parse(line) as unknown);
      }
      const failed = lines(run.stderr).find((l) => l.includes('[WARN] Activity failed'));
      assert.ok(failed, run.stderr);
      assert.ok(failed.includes(`workflowId: '${run.workflowId}'`) && failed.includes("activityType: 'startStreamingJob'"), failed);
    });

    test("the CLI's errors stay one plain line", () => {
      const result = runCli(['pipeline', 'status'], { SMARTCITY_TEMPORAL_ADDRESS: NO_TEMPORAL });
      assert.equal(result.status, 1);
      assert.match(result.stderr, /^smartcity pipeline: cannot reach Temporal at 127\.0\.0\.1:1/);
    });
  });
});
