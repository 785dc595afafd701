// Per-source row counts. schemas/index.ts reads JSON files, so its SOURCES list cannot enter the
// workflow sandbox; typing ZERO_COUNTS as SourceCounts makes the compiler hold this object to it.
import { z } from 'zod';
import type { SourceCounts } from '../activities/types';
import type { Source } from '../schemas';

export const ZERO_COUNTS: Readonly<SourceCounts> = { vehicle: 0, gps: 0, traffic: 0, weather: 0, emergency: 0 };

const SOURCE_NAMES = Object.keys(ZERO_COUNTS) as [Source, ...Source[]];

export const countsSchema = z.record(z.enum(SOURCE_NAMES), z.number().int().nonnegative());

/** Curated Iceberg snapshot ids per source (decimal strings: 64-bit ids). */
export const snapshotsSchema = z.partialRecord(z.enum(SOURCE_NAMES), z.string().regex(/^\d{1,19}$/));

export function addCounts(a: SourceCounts, b: SourceCounts): SourceCounts {
  return Object.fromEntries(SOURCE_NAMES.map((s) => [s, a[s] + b[s]])) as SourceCounts;
}

/** The sources whose count grew, e.g. `["gps 120 → 131"]`. */
export function grownSources(before: SourceCounts, after: SourceCounts): string[] {
  return SOURCE_NAMES.filter((s) => after[s] > before[s]).map((s) => `${s} ${before[s]} → ${after[s]}`);
}
