// Background processes that outlive the CLI call that started them: each runs in its own process
// group, its pid and command recorded in <dataDir>/run/<name>.json, its output in <dataDir>/logs.
// `stop` signals the whole group, so nothing it spawned is left behind.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

export interface ProcessRecord {
  name: string;
  pid: number;
  command: string[];
  /**
   * For a command that execs another program (spark-class execs java): the arguments the live
   * process's command line ends with. Without it the command line must equal `command`.
   */
  execsInto?: string[];
  startedAt: string;
  log: string;
}

export function runDir(dataDir: string): string {
  return join(dataDir, 'run');
}

export function logPath(dataDir: string, name: string): string {
  return join(dataDir, 'logs', `${name}.log`);
}

function recordPath(dataDir: string, name: string): string {
  return join(runDir(dataDir), `${name}.json`);
}

/** True while the process exists and has not exited (an exited child its parent has not reaped yet counts as gone). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false;
  }
  try {
    // /proc/<pid>/stat: "pid (comm) state …"; comm may contain spaces or parentheses.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z';
  } catch {
    return false;
  }
}

/** The command line of a live pid, to tell our process from an unrelated one that reused its pid. */
function cmdline(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0$/, '').split('\0').join(' ');
  } catch {
    return undefined;
  }
}

/** The record of a process we started that is still running, or undefined (stale records are removed). */
export function runningProcess(dataDir: string, name: string): ProcessRecord | undefined {
  const path = recordPath(dataDir, name);
  if (!existsSync(path)) return undefined;
  const record = JSON.parse(readFileSync(path, 'utf8')) as ProcessRecord;
  const line = cmdline(record.pid);
  const ours = line === record.command.join(' ') || (record.execsInto !== undefined && line?.endsWith(` ${record.execsInto.join(' ')}`));
  if (isAlive(record.pid) && ours) return record;
  rmSync(path, { force: true });
  return undefined;
}

export function startProcess(
  dataDir: string,
  name: string,
  command: string[],
  options: { cwd?: string; env?: NodeJS.ProcessEnv; execsInto?: string[] } = {},
): ProcessRecord {
  mkdirSync(runDir(dataDir), { recursive: true });
  mkdirSync(join(dataDir, 'logs'), { recursive: true });
  const log = logPath(dataDir, name);
  const fd = openSync(log, 'a');
  try {
    const child = spawn(command[0]!, command.slice(1), {
      cwd: options.cwd,
      env: options.env ?? process.env,
      detached: true,
      stdio: ['ignore', fd, fd],
    });
    if (child.pid === undefined) throw new Error(`could not start ${name}: ${command[0]}`);
    child.unref();
    const record: ProcessRecord = { name, pid: child.pid, command, ...(options.execsInto && { execsInto: options.execsInto }), startedAt: new Date().toISOString(), log };
    writeFileSync(recordPath(dataDir, name), JSON.stringify(record, null, 2));
    return record;
  } finally {
    closeSync(fd);
  }
}

/** SIGTERM to the process group, SIGKILL after the grace period; resolves once it is gone. */
export async function stopProcess(dataDir: string, name: string, graceMs = 15_000): Promise<boolean> {
  const record = runningProcess(dataDir, name);
  if (!record) return false;
  const signalGroup = (signal: NodeJS.Signals) => {
    try {
      process.kill(-record.pid, signal);
    } catch {
      // already gone
    }
  };
  signalGroup('SIGTERM');
  const deadline = Date.now() + graceMs;
  while (isAlive(record.pid) && Date.now() < deadline) await sleep(100);
  if (isAlive(record.pid)) {
    signalGroup('SIGKILL');
    const killDeadline = Date.now() + 5_000;
    while (isAlive(record.pid) && Date.now() < killDeadline) await sleep(50);
    if (isAlive(record.pid)) throw new Error(`${name} (pid ${record.pid}) survived SIGKILL`);
  }
  rmSync(recordPath(dataDir, name), { force: true });
  return true;
}

/** True when nothing listens on the port (checked by binding it, as the server would). */
export async function portIsFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once('error', () => resolve(false));
    server.listen({ port, host, exclusive: true }, () => server.close(() => resolve(true)));
  });
}

export function tailLog(path: string, lines = 20): string {
  if (!existsSync(path)) return '';
  return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
}

/**
 * Polls `ready` until it resolves true; fails early if the process died (with its log tail) and
 * after `timeoutMs` (never hangs).
 */
export async function waitUntilReady(
  record: ProcessRecord,
  what: string,
  ready: () => Promise<boolean>,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!isAlive(record.pid)) {
      throw new Error(`${what} exited during start-up; last lines of ${record.log}:\n${tailLog(record.log)}`);
    }
    if (await ready().catch(() => false)) return;
    if (Date.now() > deadline) {
      throw new Error(`${what} did not become ready within ${timeoutMs / 1000}s; see ${record.log}:\n${tailLog(record.log)}`);
    }
    await sleep(250);
  }
}
