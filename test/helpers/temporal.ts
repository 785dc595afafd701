// Temporal test environments on the binaries scripts/setup.sh installed (no downloads at test time).
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

// Worker state changes at INFO drown the test report; warnings and errors still show.
Runtime.install({ logger: new DefaultLogger('WARN') });
