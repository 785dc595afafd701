// The Temporal CLI dev server (frontend gRPC + Web UI), state in <dataDir>/temporal so workflow
// history survives `stack down` / `stack up`.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Connection } from '@temporalio/client';
import type { Config } from '../config';
import { tools } from './tools';

export function temporalCommand(config: Config): string[] {
  const dir = join(config.dataDir, 'temporal');
  mkdirSync(dir, { recursive: true });
  return [
    tools.temporal(config),
    'server',
    'start-dev',
    '--ip',
    '127.0.0.1',
    '--port',
    String(config.ports.temporal),
    '--ui-port',
    String(config.ports.temporalUi),
    '--db-filename',
    join(dir, 'temporal.db'),
    '--log-level',
    'warn',
  ];
}

/** True once the frontend answers gRPC and the Web UI answers HTTP. */
export async function temporalReady(config: Config): Promise<boolean> {
  const connection = await Connection.connect({ address: config.temporal.address, connectTimeout: 1_000 });
  try {
    await connection.workflowService.getSystemInfo({});
  } finally {
    await connection.close();
  }
  const ui = await fetch(config.temporal.uiUrl, { signal: AbortSignal.timeout(1_000) });
  return ui.ok;
}
