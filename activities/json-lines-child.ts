// A long-lived child process answering one JSON request per line with one JSON answer per line
// (spark/smartcity_spark/json_lines.py serves the Python side): its start-up (imports, a catalog)
// is paid once per process instead of once per call. Answers are matched by id; an answer with an
// `error` rejects. The child is held (keeps this process alive) only while an answer is due, and
// ends with this process (its stdin closes).
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';

interface Pending {
  resolve: (answer: Record<string, unknown>) => void;
  reject: (err: Error) => void;
}

export class JsonLinesChild {
  private child?: ChildProcessWithoutNullStreams;
  private next = 1;
  private readonly pending = new Map<number, Pending>();
  private stderr = '';

  /** `what` names the child in errors, e.g. `the curated-table reader (lake_reader.py)`. */
  constructor(
    private readonly what: string,
    private readonly command: string[],
    private readonly cwd?: string,
  ) {}

  private start(): ChildProcessWithoutNullStreams {
    const child = spawn(this.command[0]!, this.command.slice(1), { cwd: this.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    child.unref();
    for (const stream of [child.stdin, child.stdout, child.stderr] as unknown as { unref?: () => void }[]) stream.unref?.();
    child.stderr.on('data', (chunk: Buffer) => (this.stderr = (this.stderr + chunk.toString()).slice(-4_000)));
    createInterface({ input: child.stdout }).on('line', (line) => this.answer(line));
    const fail = (why: string) => {
      if (this.child === child) this.child = undefined;
      const err = new Error(`${this.what} ${why}${this.stderr ? `:\n${this.stderr.trim()}` : ''}`);
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    child.once('error', (err) => fail(`could not start: ${err.message}`));
    child.once('exit', (code, signal) => fail(`exited (${signal ?? `code ${code}`})`));
    return child;
  }

  private answer(line: string): void {
    let message: Record<string, unknown>;
    try {
      message = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return; // not ours (a library's print)
    }
    const id = typeof message.id === 'number' ? message.id : undefined;
    const waiting = id === undefined ? undefined : this.pending.get(id);
    if (!waiting) return;
    this.pending.delete(id!);
    if (this.pending.size === 0) this.child?.unref();
    if (typeof message.error === 'string') waiting.reject(new Error(`${this.what}: ${message.error}`));
    else waiting.resolve(message);
  }

  /** Sends `request` (an `id` is added) and resolves to the child's answer. */
  request(request: Record<string, unknown>): Promise<Record<string, unknown>> {
    const child = (this.child ??= this.start());
    const id = this.next++;
    // Held while an answer is due (a CLI waits for it); let go once none is.
    child.ref();
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      child.stdin.write(`${JSON.stringify({ ...request, id })}\n`);
    });
  }
}
