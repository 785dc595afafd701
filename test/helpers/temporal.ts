// Temporal test environments on the binaries scripts/setup.sh installed (no downloads at test time).
import { writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { historyToJSON } from '@temporalio/common/lib/proto-utils';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { DefaultLogger, Runtime } from '@temporalio/worker';
import { PROJECT_ROOT, type Config } from '../../config';
import { tools } from '../../stack/tools';
import { WORKFLOWS_PATH, WORKFLOW_BUNDLE_PATH, workflowBundlePath } from '../../workers/bundle';

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

/**
 * A current bundle of the project's workflows, or of a fixture's (`workflowsPath`): built once and
 * shared by every test file and worker process of a run, rebuilt only when a bundled file changed
 * (workers/bundle.ts). The project's is the one `smartcity worker` uses; fixtures get their own.
 */
export async function workflowBundle(workflowsPath = WORKFLOWS_PATH): Promise<{ codePath: string }> {
  const bundlePath =
    workflowsPath === WORKFLOWS_PATH ? WORKFLOW_BUNDLE_PATH : join(PROJECT_ROOT, 'dist', 'test-bundles', `${relative(PROJECT_ROOT, workflowsPath).replace(/[/.]/g, '_')}.js`);
  return { codePath: await workflowBundlePath(bundlePath, workflowsPath) };
}

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
