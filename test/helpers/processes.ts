// Tests' view of the machine's processes, from /proc: which belong to a data folder (by
// command line or by the SMARTCITY_DATA_DIR they inherited), which of them is the JVM of a Spark
// job, and killing by pid. Callers signal only processes of their own data folder.
import { readFileSync, readdirSync } from 'node:fs';
import { until } from './until';

export interface ProcessInfo {
  pid: number;
  ppid: number;
  pgid: number;
  argv: string[];
}

function read(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

function info(pid: number): ProcessInfo | undefined {
  const stat = read(`/proc/${pid}/stat`);
  const cmdline = read(`/proc/${pid}/cmdline`);
  if (stat === undefined || cmdline === undefined) return undefined;
  // "pid (comm) state ppid pgrp …"; comm may hold spaces and parentheses.
  const [state, ppid, pgrp] = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  if (state === 'Z') return undefined;
  return { pid, ppid: Number(ppid), pgid: Number(pgrp), argv: cmdline.replace(/\0$/, '').split('\0') };
}

export function listProcesses(): ProcessInfo[] {
  return readdirSync('/proc')
    .filter((entry) => /^\d+$/.test(entry))
    .flatMap((entry) => info(Number(entry)) ?? []);
}

/** This process and its ancestors: they carry the tier's environment but are not its leftovers. */
function selfAndAncestors(): Set<number> {
  const out = new Set<number>();
  for (let pid = process.pid; pid > 1 && !out.has(pid); ) {
    out.add(pid);
    pid = info(pid)?.ppid ?? 1;
  }
  return out;
}

/** Every live process started for `dataDir`: named in its command line or in its environment. */
export function processesOf(dataDir: string): ProcessInfo[] {
  const own = selfAndAncestors();
  const marker = `SMARTCITY_DATA_DIR=${dataDir}`;
  return listProcesses().filter((p) => {
    if (own.has(p.pid)) return false;
    if (p.argv.some((arg) => arg === dataDir || arg.includes(`${dataDir}/`))) return true;
    return (read(`/proc/${p.pid}/environ`) ?? '').split('\0').includes(marker);
  });
}

/**
 * The processes of one job script under `lakeRoot` that do its work: spark-submit JVMs
 * (org.apache.spark.deploy.SparkSubmit) and, for a curate run on the Spark Connect server, its
 * Python client (whose operations run in the server).
 */
export function sparkJvms(lakeRoot: string, script: 'stream_ingest.py' | 'curate.py'): ProcessInfo[] {
  return listProcesses().filter(
    (p) =>
      (p.argv.includes('org.apache.spark.deploy.SparkSubmit') || (/\/python[0-9.]*$/.test(p.argv[0] ?? '') && p.argv[1]?.endsWith(`/${script}`))) &&
      p.argv.some((arg) => arg.endsWith(`/${script}`)) &&
      p.argv.some((arg) => arg === lakeRoot || arg.startsWith(`${lakeRoot}/`)),
  );
}

/** The value after `--flag` in a command line. */
export function argValue(argv: string[], flag: string): string | undefined {
  const i = argv.indexOf(flag);
  return i >= 0 ? argv[i + 1] : undefined;
}

export function isAlive(pid: number): boolean {
  return info(pid) !== undefined;
}

export function kill(pid: number, signal: NodeJS.Signals): boolean {
  try {
    process.kill(pid, signal);
    return true;
  } catch {
    return false;
  }
}

/** Waits until none of `pids` is alive; returns those still alive after `timeoutMs`. */
export async function waitGone(pids: number[], timeoutMs: number): Promise<number[]> {
  const alive = () => pids.filter(isAlive);
  return until(`pids ${pids.join(', ')} to be gone`, () => (alive().length === 0 ? [] : undefined), { timeoutMs, everyMs: 200 }).catch(alive);
}

/** Short description of a process for the log: pid and the interesting part of its command. */
export function describe(p: ProcessInfo): string {
  const script = p.argv.find((arg) => /\.(py|ts)$/.test(arg)) ?? p.argv[0] ?? '?';
  return `pid ${p.pid} (${script.split('/').slice(-2).join('/')}${p.argv.includes('worker') ? ' worker' : ''})`;
}

/** SIGTERM, then SIGKILL, to every process of the data folder; returns what was found. */
export async function killAll(dataDir: string): Promise<string[]> {
  const found = processesOf(dataDir);
  for (const p of found) kill(p.pid, 'SIGTERM');
  const left = await waitGone(
    found.map((p) => p.pid),
    10_000,
  );
  for (const pid of left) kill(pid, 'SIGKILL');
  await waitGone(left, 5_000);
  return found.map(describe);
}
