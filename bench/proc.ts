// CPU use of the pipeline's processes, read from /proc (Linux): the worker, Spark (every
// spark-submit JVM with what it started: the Python driver and workers), the Kafka broker, the
// Temporal server and the machine as a whole. Cumulative CPU time is sampled per process, so a
// short-lived process (a curate job) counts from the first sample that saw it.
import { readdirSync, readFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';

const TICKS_PER_SECOND = 100; // USER_HZ: 100 on every Linux the project runs on

interface ProcStat {
  pid: number;
  ppid: number;
  /** utime + stime of the process itself (not of its reaped children), in seconds. */
  cpuSeconds: number;
}

function readStat(pid: number): ProcStat | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // "pid (comm) state ppid …": comm may hold spaces and parentheses, so split after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return { pid, ppid: Number(fields[1]), cpuSeconds: (Number(fields[11]) + Number(fields[12])) / TICKS_PER_SECOND };
  } catch {
    return undefined; // exited between the listing and the read
  }
}

function cmdline(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
  } catch {
    return '';
  }
}

/** Busy and total CPU time of the machine, in ticks, from the first line of /proc/stat. */
function machineTicks(): { busy: number; total: number } {
  const [, ...values] = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]!.trim().split(/\s+/);
  const ticks = values.map(Number);
  const idle = (ticks[3] ?? 0) + (ticks[4] ?? 0);
  const total = ticks.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

export type CpuGroup = 'worker' | 'spark' | 'kafka' | 'temporal';

export interface CpuUse {
  /** Per group: CPU seconds per wall second (1.0 = one core busy). */
  cores: Record<CpuGroup, number>;
  /** Share of all the machine's cores busy, 0–1. */
  machine: number;
  cpus: number;
  /** One-minute load average at the end. */
  loadAverage: number;
}

/** Samples the CPU time of the groups' processes; `use()` gives the rates since construction. */
export class CpuMeter {
  private readonly startedAt = Date.now();
  private readonly machineStart = machineTicks();
  /** CPU seconds per pid when first seen, and last seen. */
  private readonly seen = new Map<number, { group: CpuGroup; first: number; last: number }>();

  constructor(private readonly roots: () => Partial<Record<Exclude<CpuGroup, 'spark'>, number>>) {
    this.sample(true);
  }

  /** Call every few seconds, so short-lived processes are seen. */
  sample(initial = false): void {
    const stats = new Map<number, ProcStat>();
    for (const name of readdirSync('/proc')) {
      if (!/^\d+$/.test(name)) continue;
      const stat = readStat(Number(name));
      if (stat) stats.set(stat.pid, stat);
    }
    const group = new Map<number, CpuGroup>();
    for (const [name, pid] of Object.entries(this.roots()) as [CpuGroup, number | undefined][]) if (pid !== undefined) group.set(pid, name);
    const sparkOf = (pid: number): boolean => {
      for (let p = stats.get(pid), depth = 0; p && depth < 20; p = stats.get(p.ppid), depth++) {
        if (cmdline(p.pid).includes('org.apache.spark.deploy.SparkSubmit')) return true;
      }
      return false;
    };
    for (const stat of stats.values()) {
      const known = this.seen.get(stat.pid);
      if (known) {
        known.last = stat.cpuSeconds;
        continue;
      }
      const g = group.get(stat.pid) ?? (sparkOf(stat.pid) ? 'spark' : undefined);
      // A process first seen after the start began after it: all its CPU time is in the period.
      if (g) this.seen.set(stat.pid, { group: g, first: initial ? stat.cpuSeconds : 0, last: stat.cpuSeconds });
    }
  }

  use(): CpuUse {
    this.sample();
    const seconds = (Date.now() - this.startedAt) / 1000;
    const cores: Record<CpuGroup, number> = { worker: 0, spark: 0, kafka: 0, temporal: 0 };
    for (const p of this.seen.values()) cores[p.group] += (p.last - p.first) / seconds;
    const end = machineTicks();
    const machine = (end.busy - this.machineStart.busy) / Math.max(1, end.total - this.machineStart.total);
    return { cores, machine, cpus: cpus().length, loadAverage: loadavg()[0]! };
  }
}
