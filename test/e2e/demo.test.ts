// `smartcity demo` as a user runs it, against whatever stack the environment names (npm test's
// test stack, which the demo then uses and leaves running; without one it starts and stops its
// own): it must end with a live and a backfilled window loaded and checked, print the report,
// write the HTML report and stop the worker, the controller and the streaming job it started.
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { loadConfig } from '../../config';
import { sparkJobStatus } from '../../spark/runner';
import { stackStatus } from '../../stack';
import { runningProcess } from '../../stack/processes';
import { connectClient } from '../../temporal/connection';
import { DEFAULT_STREAMING_JOB, PIPELINE_WORKFLOW_ID } from '../../workflows';
import { WORKER_PROCESS } from '../../cli/local-run';
import { runCli } from '../helpers/cli';
import { until } from '../helpers/until';

const config = loadConfig();

async function controllerClosed(): Promise<void> {
  const { client, close } = await connectClient(config);
  try {
    await until(
      `${PIPELINE_WORKFLOW_ID} to close`,
      async () => {
        const running = await client.workflow
          .getHandle(PIPELINE_WORKFLOW_ID)
          .describe()
          .then((d) => d.status.name === 'RUNNING')
          .catch(() => false);
        return running ? undefined : true;
      },
      { timeoutMs: 10 * 60_000, everyMs: 5_000 },
    );
  } finally {
    await close();
  }
}

test('the demo loads a live and a backfilled window, reports them and stops what it started', { timeout: 12 * 60_000 }, async (t) => {
  const startedAt = Date.now();
  const stackWasUp = (await stackStatus(config)).components.every((c) => c.answering);
  // The demo replaces a running controller; the pipeline e2e test's one must have finished first.
  if (stackWasUp) await controllerClosed();
  // Its own task queue: Temporal lists a stopped worker's pollers for minutes, and later tests
  // (smartcity simulate) would take the demo's gone worker for one that runs their workflows.
  const result = runCli(['demo'], { SMARTCITY_TASK_QUEUE: `demo-e2e-${randomUUID()}` }, 11 * 60_000);
  const output = `${result.stdout}\n${result.stderr}`;
  assert.equal(result.status, 0, output.slice(-4000));
  // Where its time went, in the test report (docs/benchmarks.md has the demo's figures).
  t.diagnostic(`${result.stdout.slice(result.stdout.indexOf('demo stages'), result.stdout.indexOf('HTML report:')).trim()}`);
  assert.match(result.stdout, /✓ a live and the backfilled window loaded \+ checked/);
  assert.match(result.stdout, /rows per source and layer/);
  assert.match(result.stdout, /quality checks: [1-9]\d* passed, 0 failed/);
  assert.match(result.stdout, /stages: crawlRaw .* curate .* load .* quality/);
  assert.match(result.stdout, new RegExp(`${config.temporal.uiUrl}/namespaces/[^/]+/workflows/smartcity-batch-[^/]+/[0-9a-f-]+/history`));

  const html = join(config.dataDir, 'reports', 'demo.html');
  assert.ok(existsSync(html), `${html} was written`);
  assert.ok(readFileSync(html, 'utf8').includes('<svg id="map"'));

  assert.equal(runningProcess(config.dataDir, WORKER_PROCESS), undefined, 'the worker process was stopped');
  assert.notEqual((await sparkJobStatus(config, DEFAULT_STREAMING_JOB)).state, 'running', 'the streaming job was stopped');
  if (!stackWasUp) {
    assert.ok((await stackStatus(config)).components.every((c) => c.state === 'stopped'), 'the stack the demo started was stopped');
    return;
  }
  const { client, close } = await connectClient(config);
  try {
    const controller = await client.workflow.getHandle(PIPELINE_WORKFLOW_ID).describe();
    assert.ok(controller.startTime.getTime() >= startedAt, 'the controller is the one the demo started');
    assert.notEqual(controller.status.name, 'RUNNING');
  } finally {
    await close();
  }
});
