// Gets the replay's windows curated while the faults happen: a window is backfilled (requestBackfill)
// as soon as raw holds every event the generator makes for it, so no window is loaded before its
// data is complete (a backfilled window is not re-counted for late data). Raw is read from the
// Parquet files, not from the pipeline's counts. It feeds until every window is requested or it
// is stopped; the scenario decides how long to wait for it.
import { setTimeout as sleep } from 'node:timers/promises';
import { SOURCES } from '../../schemas';
import { lakeIds } from '../helpers/lake';
import { requestBackfill, type Scenario } from './observe';
import { label, type Expected, type Window } from './truth';

const EVERY_MS = 15_000;

export class BackfillFeeder {
  /** Window key → when its backfill was accepted. */
  readonly requested = new Map<string, number>();
  /** The last time raw gained an event of a waiting window, or a window was requested. */
  progressAt = Date.now();
  /** What the first waiting window still lacks, as of the last look. */
  waitingFor: string | undefined;
  readonly done: Promise<void>;
  private stopped = false;

  constructor(
    private readonly s: Scenario,
    private readonly expected: Expected,
  ) {
    this.done = this.run();
  }

  stop(): void {
    this.stopped = true;
  }

  private idsOf(w: Window): string[] {
    return SOURCES.flatMap((source) => [...this.expected[source]].filter(([, at]) => at >= w.fromMs && at < w.toMs).map(([id]) => id));
  }

  private async run(): Promise<void> {
    const { tier } = this.s;
    const wanted = new Map(this.s.windows.map((w) => [w, this.idsOf(w)]));
    let landed = -1;
    while (!this.stopped && !tier.aborted) {
      const waiting = this.s.windows.filter((w) => !this.requested.has(w.key));
      if (waiting.length === 0) {
        this.waitingFor = undefined;
        return;
      }
      try {
        const raw = new Set<string>();
        for (const source of SOURCES) for (const id of (await lakeIds(tier.lakeRoot, 'raw', source)).counts.keys()) raw.add(id);
        const complete = (w: Window) => wanted.get(w)!.every((id) => raw.has(id));
        // Only a prefix of complete windows: one contiguous range per request, in event-time order.
        const ready: Window[] = [];
        for (const w of waiting) {
          if (!complete(w)) break;
          ready.push(w);
        }
        const now = waiting.reduce((n, w) => n + wanted.get(w)!.filter((id) => raw.has(id)).length, 0);
        if (now !== landed || ready.length > 0) this.progressAt = Date.now();
        landed = now;
        const first = waiting[ready.length];
        this.waitingFor = first && `window ${label(first)} still lacks ${wanted.get(first)!.filter((id) => !raw.has(id)).length} of its ${wanted.get(first)!.length} events in raw`;
        if (ready.length > 0) {
          await requestBackfill(this.s, ready, false);
          for (const w of ready) this.requested.set(w.key, Date.now());
        }
      } catch (err) {
        tier.log(`backfill feeder: ${(err as Error).message.split('\n')[0]} (trying again)`);
      }
      await sleep(EVERY_MS);
    }
  }
}
