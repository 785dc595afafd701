// A real `smartcity worker` process for tests that look at what the worker serves or writes: its
// own environment on top of the test stack's, stderr kept, stopped with SIGTERM like a deploy would.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../config';
import { NotYet, until, within } from './until';

export interface WorkerProcess {
  child: ChildProcess;
  /** Everything written to stderr so far. */
  stderr(): string;
  /** SIGTERM, then waits for the exit (SIGKILL after the timeout); resolves with the exit code. */
  stop(timeoutMs?: number): Promise<number | null>;
}

const READY_LINE = 'worker polling task queue';

export async function startWorkerProcess(env: NodeJS.ProcessEnv, readyTimeoutMs = 120_000): Promise<WorkerProcess> {
  const child = spawn(join(PROJECT_ROOT, 'bin', 'smartcity'), ['worker'], { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (err += chunk));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const worker: WorkerProcess = {
    child,
    stderr: () => err,
    async stop(timeoutMs = 60_000) {
      if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
      child.kill('SIGTERM');
      const code = await within(exited, timeoutMs, () => 'timeout' as const);
      if (code !== 'timeout') return code;
      child.kill('SIGKILL');
      return exited;
    },
  };
  await until(
    'the worker to poll',
    () => {
      if (err.includes(READY_LINE)) return true;
      if (child.exitCode !== null) throw new Error(`the worker exited with code ${child.exitCode}:\n${err}`);
      throw new NotYet(`stderr:\n${err}`);
    },
    { timeoutMs: readyTimeoutMs, everyMs: 200 },
  ).catch(async (error: unknown) => {
    await worker.stop();
    throw error;
  });
  return worker;
}
