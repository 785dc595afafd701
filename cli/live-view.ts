// A live progress display for long commands (demo, start): the stages with their times, and a few
// lines of status that the command refreshes. On a terminal the block is redrawn in place, with
// log lines printed above it; elsewhere (CI, a pipe) stage changes print as lines and the status
// every `plainEveryMs`.
import { seconds } from '../report/terminal';

const SPINNER = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

export interface StageTiming {
  name: string;
  ms: number;
  ok: boolean;
}

interface Stage {
  name: string;
  startedAt: number;
  endedAt?: number;
  ok?: boolean;
  detail?: string;
}

export class LiveView {
  private readonly stages: Stage[] = [];
  private status: string[] = [];
  private drawn = 0;
  private frame = 0;
  private timer: NodeJS.Timeout | undefined;
  private lastPlain = 0;
  private readonly startedAt = Date.now();

  constructor(
    private readonly title: string,
    private readonly out: NodeJS.WriteStream = process.stdout,
    private readonly plainEveryMs = 10_000,
  ) {
    if (this.tty) {
      this.timer = setInterval(() => this.redraw(), 120);
      this.timer.unref();
    }
  }

  private get tty(): boolean {
    return this.out.isTTY === true;
  }

  /** A line of output that stays (printed above the live block). */
  log = (line: string): void => {
    this.clear();
    this.out.write(`${line}\n`);
    this.draw();
  };

  /** Runs one stage, showing it as running, then done with its time (or failed). */
  async step<T>(name: string, run: () => Promise<T>, detail?: (result: T) => string): Promise<T> {
    const stage: Stage = { name, startedAt: Date.now() };
    this.stages.push(stage);
    if (!this.tty) this.out.write(`… ${name}\n`);
    this.redraw();
    try {
      const result = await run();
      stage.detail = detail?.(result);
      stage.ok = true;
      return result;
    } catch (err) {
      stage.ok = false;
      throw err;
    } finally {
      stage.endedAt = Date.now();
      if (!this.tty) this.out.write(`${this.stageLine(stage)}\n`);
      this.redraw();
    }
  }

  /** Replaces the status lines under the stages. */
  setStatus(lines: string[]): void {
    this.status = lines;
    if (this.tty) this.redraw();
    else if (Date.now() - this.lastPlain >= this.plainEveryMs) {
      this.lastPlain = Date.now();
      for (const line of lines) this.out.write(`  ${line}\n`);
    }
  }

  timings(): StageTiming[] {
    return this.stages.filter((s) => s.endedAt !== undefined).map((s) => ({ name: s.name, ms: s.endedAt! - s.startedAt, ok: s.ok === true }));
  }

  /** Draws the final state once and stops redrawing; later output goes below it. */
  stop(): void {
    if (!this.tty || this.timer === undefined) return;
    this.clear();
    clearInterval(this.timer);
    this.timer = undefined;
    this.out.write(`${this.lines().join('\n')}\n`);
  }

  private stageLine(s: Stage): string {
    const mark = s.ok === undefined ? SPINNER[this.frame % SPINNER.length]! : s.ok ? '✓' : '✗';
    const ms = (s.endedAt ?? Date.now()) - s.startedAt;
    return `${mark} ${s.name.padEnd(50)} ${seconds(ms).padStart(6)}${s.detail ? `  ${s.detail}` : ''}`;
  }

  private lines(): string[] {
    const elapsed = Math.round((Date.now() - this.startedAt) / 1000);
    return [
      `── ${this.title} · ${Math.floor(elapsed / 60)}:${String(elapsed % 60).padStart(2, '0')} elapsed`,
      ...this.stages.map((s) => `  ${this.stageLine(s)}`),
      ...this.status.map((l) => `  ${l}`),
    ];
  }

  private clear(): void {
    if (!this.tty || this.drawn === 0) return;
    this.out.write(`\x1b[${this.drawn}A\x1b[0J`);
    this.drawn = 0;
  }

  private draw(): void {
    if (!this.tty || this.timer === undefined) return;
    const width = this.out.columns || 120;
    const lines = this.lines().map((l) => (l.length > width - 1 ? `${l.slice(0, width - 2)}…` : l));
    this.out.write(`${lines.join('\n')}\n`);
    this.drawn = lines.length;
  }

  private redraw(): void {
    if (!this.tty) return;
    this.frame++;
    this.clear();
    this.draw();
  }
}
