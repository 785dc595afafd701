// Temporal test environments on the binaries scripts/setup.sh installed (no downloads at test time).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import type { Config } from '../../config';
import { tools } from '../../stack/tools';

export function createTimeSkippingEnv(config: Config): Promise<TestWorkflowEnvironment> {
  return TestWorkflowEnvironment.createTimeSkipping({
    server: { executable: { type: 'existing-path', path: tools.temporalTestServer(config) } },
  });
}

export function createDevServerEnv(config: Config): Promise<TestWorkflowEnvironment> {
  return TestWorkflowEnvironment.createLocal({
    server: { executable: { type: 'existing-path', path: tools.temporal(config) }, ui: false },
  });
}

/** A logger that drops webpack's bundling chatter in tests. */
export const quietLogger = { log() {}, trace() {}, debug() {}, info() {}, warn() {}, error() {} };

/**
 * With RECORD_HISTORIES=1, saves the workflow's history as test/histories/<name>.json (the proto
 * JSON `temporal workflow show --output json` writes) for the replay tests; normal runs never
 * rewrite the committed files.
 */
export async function recordHistory(handle: WorkflowHandle, name: string): Promise<void> {
  if (process.env.RECORD_HISTORIES !== '1') return;
  const history = await handle.fetchHistory();
  writeFileSync(join(__dirname, '..', 'histories', `${name}.json`), `${historyToJSON(history)}\n`);
}

// Worker state changes at INFO drown the test report; warnings and errors still show.
Runtime.install({ logger: new DefaultLogger('WARN') });
