// The SDK's test environments run on the pinned binaries from .tools, and the test stack's dev
// server accepts workers: the ground every workflow test stands on.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, Worker } from '@temporalio/worker';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { loadConfig } from '../../config';
import { createDevServerEnv, createTimeSkippingEnv, workflowBundle as bundleOf } from '../helpers/temporal';

const config = loadConfig();
const activities = { echo: async (text: string) => `echo: ${text}` };
const workflowBundle = () => bundleOf(require.resolve('../fixtures/workflows'));

async function runOnce(connection: NativeConnection, client: Client, namespace: string): Promise<string> {
  const taskQueue = `env-test-${randomUUID()}`;
  const worker = await Worker.create({ connection, namespace, taskQueue, workflowBundle: await workflowBundle(), activities });
  return worker.runUntil(client.workflow.execute<(text: string) => Promise<string>>('waitAnHourThenEcho', { taskQueue, workflowId: taskQueue, args: ['hello'] }));
}

async function withEnv(create: () => Promise<TestWorkflowEnvironment>, fn: (env: TestWorkflowEnvironment) => Promise<void>) {
  const env = await create();
  try {
    await fn(env);
  } finally {
    await env.teardown();
  }
}

describe('Temporal test environments', () => {
  test('the time-skipping test server skips a one-hour timer', async () => {
    await withEnv(
      () => createTimeSkippingEnv(config),
      async (env) => {
        const started = Date.now();
        assert.equal(await runOnce(env.nativeConnection, env.client, env.namespace ?? 'default'), 'echo: hello');
        assert.ok(Date.now() - started < 60_000, 'an hour of workflow time passed in well under a minute');
      },
    );
  });

  test('an ephemeral dev server from the pinned Temporal CLI runs a workflow', async () => {
    await withEnv(
      () => createDevServerEnv(config),
      async (env) => {
        // The dev server does not skip time: unlock the hour-long sleep by skipping through the env.
        const taskQueue = `env-test-${randomUUID()}`;
        const worker = await Worker.create({
          connection: env.nativeConnection,
          taskQueue,
          workflowBundle: await workflowBundle(),
          activities,
        });
        const result = await worker.runUntil(async () => {
          const handle = await env.client.workflow.start('waitAnHourThenEcho', { taskQueue, workflowId: taskQueue, args: ['dev'] });
          const description = await handle.describe();
          assert.equal(description.status.name, 'RUNNING');
          await handle.terminate('test done');
          return (await handle.describe()).status.name;
        });
        assert.equal(result, 'TERMINATED');
      },
    );
  });

  test('the test stack\'s dev server (started by the test command) runs a workflow', async () => {
    const nativeConnection = await NativeConnection.connect({ address: config.temporal.address });
    const connection = await Connection.connect({ address: config.temporal.address });
    try {
      const client = new Client({ connection, namespace: config.temporal.namespace });
      const taskQueue = `env-test-${randomUUID()}`;
      const worker = await Worker.create({ connection: nativeConnection, taskQueue, workflowBundle: await workflowBundle(), activities });
      const status = await worker.runUntil(async () => {
        const handle = await client.workflow.start('waitAnHourThenEcho', { taskQueue, workflowId: taskQueue, args: ['stack'] });
        await handle.terminate('test done');
        return (await handle.describe()).status.name;
      });
      assert.equal(status, 'TERMINATED');
    } finally {
      await connection.close();
      await nativeConnection.close();
    }
  });
});
