// Time windows of event time, half-open [from, to), aligned to multiples of their size since the
// epoch so every run, live or backfill, cuts the same windows.
import type { TimeWindow } from '../activities/types';
import { iso } from './input';

export const DEFAULT_WINDOW_MINUTES = 5;
export const DEFAULT_ALLOWED_LATENESS_SECONDS = 60;
export const MINUTE_MS = 60_000;

export function windowAt(ms: number, sizeMs: number): TimeWindow {
  const from = Math.floor(ms / sizeMs) * sizeMs;
  return { from: iso(from), to: iso(from + sizeMs) };
}

/** How many aligned windows overlap [fromMs, toMs), without building them. */
export function countWindows(fromMs: number, toMs: number, sizeMs: number): number {
  return Math.max(0, Math.ceil(toMs / sizeMs) - Math.floor(fromMs / sizeMs));
}

/** ISO-8601 interval notation, as windows appear in messages. */
export const windowLabel = (w: TimeWindow): string => `${w.from}/${w.to}`;
