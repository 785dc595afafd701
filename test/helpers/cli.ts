import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../config';

export interface CliResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

/** Runs bin/smartcity as a user would, with extra environment variables. */
export function runCli(args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 120_000): CliResult {
  const result = spawnSync(join(PROJECT_ROOT, 'bin', 'smartcity'), args, {
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: timeoutMs,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}
