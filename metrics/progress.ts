// Reads the streaming job's progress file (<lake>/_progress/<job>.jsonl, one JSON line per
// micro-batch) incrementally: each call returns the lines completed since the last one. The file
// only grows while the job keeps its name; a file that shrank was replaced and is read afresh.
import { closeSync, existsSync, openSync, readSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { StringDecoder } from 'node:string_decoder';
import { z } from 'zod';
import type { Config } from '../config';

/**
 * The fields the metrics use. newest_event_time and quarantined_kinds came later than the rest:
 * lines without them still count (quarantined records then have no reason class).
 */
const progressLineSchema = z.looseObject({
  batch_id: z.number().int(),
  ingest_time: z.string(),
  duration_ms: z.number().nonnegative(),
  consumed: z.number().nonnegative(),
  valid: z.record(z.string(), z.number()),
  quarantined: z.record(z.string(), z.number()),
  offsets: z.record(z.string(), z.record(z.string(), z.object({ start: z.number(), end: z.number() }).loose())),
  newest_event_time: z.record(z.string(), z.iso.datetime({ offset: true }).nullable()).optional(),
  quarantined_kinds: z.record(z.string(), z.record(z.string(), z.number())).optional(),
});
export type ProgressLine = z.output<typeof progressLineSchema>;

const CHUNK_BYTES = 1 << 20;

/** Where the ingest job named `jobName` appends its progress on the local target (DESIGN.md, lake layout). */
export function progressFilePath(config: Pick<Config, 'lakeRoot'>, jobName: string): string {
  return join(config.lakeRoot, '_progress', `${jobName}.jsonl`);
}

export class ProgressTail {
  private offset = 0;
  private partial = '';
  /** Keeps a character split between two reads whole. */
  private decoder = new StringDecoder('utf8');

  constructor(
    readonly path: string,
    /** Told about each line that is not a progress line; it is skipped. */
    private readonly onBadLine: (problem: string) => void,
  ) {}

  /** The complete lines appended since the previous call (all of them on the first call). */
  read(): ProgressLine[] {
    if (!existsSync(this.path)) return [];
    const size = statSync(this.path).size;
    if (size < this.offset) {
      this.offset = 0;
      this.partial = '';
      this.decoder = new StringDecoder('utf8');
    }
    if (size === this.offset) return [];
    const fd = openSync(this.path, 'r');
    const lines: ProgressLine[] = [];
    try {
      const buffer = Buffer.alloc(Math.min(CHUNK_BYTES, size - this.offset));
      while (this.offset < size) {
        const n = readSync(fd, buffer, 0, Math.min(buffer.length, size - this.offset), this.offset);
        if (n === 0) break;
        this.offset += n;
        const text = this.partial + this.decoder.write(buffer.subarray(0, n));
        const end = text.lastIndexOf('\n');
        this.partial = text.slice(end + 1);
        for (const line of text.slice(0, end + 1).split('\n')) {
          if (line.trim() !== '') this.parse(line, lines);
        }
      }
    } finally {
      closeSync(fd);
    }
    return lines;
  }

  private parse(line: string, into: ProgressLine[]): void {
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      this.onBadLine(`not JSON: ${line.slice(0, 120)}`);
      return;
    }
    const parsed = progressLineSchema.safeParse(value);
    if (parsed.success) into.push(parsed.data);
    else this.onBadLine(parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
  }
}
