// The project's own processes as a user runs them (bin/smartcity …), started in the background so
// a test can act on the world (kill a broker) while they run, and read what they printed.
import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT, type Config } from '../../config';
import { NotYet, until, within } from './until';

export class Child {
  readonly process: ChildProcess;
  stdout = '';
  stderr = '';
  /** The exit code (null when killed by a signal) once it has exited. */
  readonly exited: Promise<number | null>;
  exitCode: number | null | undefined;

  constructor(args: string[], env: NodeJS.ProcessEnv = {}) {
    this.process = spawn(join(PROJECT_ROOT, 'bin', 'smartcity'), args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    this.process.stdout!.on('data', (chunk: Buffer) => (this.stdout += chunk.toString()));
    this.process.stderr!.on('data', (chunk: Buffer) => (this.stderr += chunk.toString()));
    this.exited = new Promise((resolve) =>
      this.process.on('exit', (code) => {
        this.exitCode = code;
        resolve(code);
      }),
    );
  }

  get running(): boolean {
    return this.exitCode === undefined;
  }

  /** Waits until stdout or stderr matches; fails if the process exits first or after `timeoutMs`. */
  async waitFor(pattern: RegExp, what: string, timeoutMs = 120_000): Promise<void> {
    await until(
      what,
      () => {
        if (pattern.test(this.stdout) || pattern.test(this.stderr)) return true;
        if (!this.running) throw new Error(`exited (${this.exitCode}) before ${what}:\n${this.stderr.slice(-3000)}`);
        throw new NotYet(`stderr:\n${this.stderr.slice(-3000)}`);
      },
      { timeoutMs, everyMs: 200 },
    );
  }

  /** SIGTERM, then SIGKILL if it has not exited within `graceMs`. */
  async stop(graceMs = 60_000): Promise<number | null> {
    if (!this.running) return this.exitCode!;
    this.process.kill('SIGTERM');
    const code = await within(this.exited, graceMs, () => 'timeout' as const);
    if (code !== 'timeout') return code;
    this.process.kill('SIGKILL');
    return this.exited;
  }
}

/** SIGKILLs the test stack's Kafka broker (by its pid record); `smartcity stack up` starts it again. */
export function killBroker(config: Config): number {
  const { pid } = JSON.parse(readFileSync(join(config.dataDir, 'run', 'kafka.json'), 'utf8')) as { pid: number };
  process.kill(pid, 'SIGKILL');
  return pid;
}
