// The streaming job's progress lines (one JSON object per micro-batch, snake_case, written by
// spark/jobs/stream_ingest.py) as the workflows see them. One reading for both targets: the local
// runner reads the line from a file, the EMR activity from the job's progress object on S3.
import type { IngestProgress } from './types';

function sum(counts: unknown): number {
  return typeof counts === 'object' && counts !== null ? Object.values(counts).reduce((n: number, v) => n + (typeof v === 'number' ? v : 0), 0) : 0;
}

/** The line's progress, or undefined when it is not one (no numeric batch_id). */
export function ingestProgress(line: Record<string, unknown> | undefined): IngestProgress | undefined {
  if (!line || typeof line.batch_id !== 'number') return undefined;
  const durationMs = typeof line.duration_ms === 'number' ? line.duration_ms : 0;
  const startedAt = typeof line.ingest_time === 'string' ? Date.parse(line.ingest_time) : NaN;
  return {
    batchId: line.batch_id,
    at: Number.isNaN(startedAt) ? new Date().toISOString() : new Date(startedAt + durationMs).toISOString(),
    consumed: typeof line.consumed === 'number' ? line.consumed : 0,
    valid: sum(line.valid),
    quarantined: sum(line.quarantined),
    durationMs,
  };
}

/**
 * The progress of the last complete line of a progress file's text: the latest batch. A line
 * without its newline is still being written; a line that is not a JSON object is skipped.
 */
export function latestIngestProgress(text: string): IngestProgress | undefined {
  const lines = text.slice(0, text.lastIndexOf('\n') + 1).split('\n').filter(Boolean);
  for (let i = lines.length - 1; i >= 0; i--) {
    try {
      const value: unknown = JSON.parse(lines[i]!);
      const progress = typeof value === 'object' && value !== null && !Array.isArray(value) ? ingestProgress(value as Record<string, unknown>) : undefined;
      if (progress) return progress;
    } catch {
      // a damaged line: the one before it is the latest we can read
    }
  }
  return undefined;
}
