// How the tier watches the running pipeline: the controller's status, the ingest job's progress
// lines and offsets, the curate jobs running now, and the backfill requests it makes itself.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { DEFAULT_STREAMING_JOB, PIPELINE_WORKFLOW_ID, pipelineStatusQuery, requestBackfillUpdate, type BackfillOutcome, type PipelineStatus, type WindowRecord } from '../../workflows';
import { createKafka, KEY_PARTITIONER } from '../../kafka/client';
import { SOURCES } from '../../schemas';
import { readProgress, type IngestProgress } from '../../spark/runner';
import { argValue, sparkJvms, type ProcessInfo } from '../helpers/processes';
import type { Tier } from './tier';
import { label, malformedRecords, type Malformed, type Replay, type Window } from './truth';

export interface Scenario {
  tier: Tier;
  replay: Replay;
  /** The windows the replay's event times cover: each must be backfilled and loaded. */
  windows: Window[];
  windowMs: number;
  latenessMs: number;
  fleet: WorkflowHandle | undefined;
  /** The malformed records sent so far: quarantine must hold exactly these. */
  injected: Malformed[];
}

export function controllerStatus(s: Scenario): Promise<PipelineStatus> {
  return s.tier.ask((client) => client.workflow.getHandle(PIPELINE_WORKFLOW_ID).query(pipelineStatusQuery), 20_000);
}

export function recordOf(status: PipelineStatus, fromMs: number): WindowRecord | undefined {
  return status.windows.find((w) => Date.parse(w.window.from) === fromMs);
}

/** The window's record says it was loaded after `sinceMs`. */
export function loadedSince(status: PipelineStatus, fromMs: number, sinceMs: number): WindowRecord | undefined {
  const record = recordOf(status, fromMs);
  return record?.status === 'loaded' && record.loadedAt !== undefined && Date.parse(record.loadedAt) > sinceMs ? record : undefined;
}

export function isLoaded(status: PipelineStatus, w: Window): boolean {
  return status.loaded.some((r) => Date.parse(r.from) <= w.fromMs && Date.parse(r.to) >= w.toMs);
}

/** What the controller says of a window, for messages. */
export function windowState(status: PipelineStatus | undefined, w: Window): string {
  if (!status) return 'controller status unknown';
  const record = recordOf(status, w.fromMs);
  if (isLoaded(status, w)) return 'loaded';
  if (status.running.some((r) => Date.parse(r.window.from) === w.fromMs)) return `running (${record?.workflowId ?? '?'})`;
  if (status.queue.some((q) => Date.parse(q.window.from) === w.fromMs)) return 'queued';
  if (record) return `${record.status}${record.lastError ? `: ${record.lastError.message.split('\n')[0]}` : ''}`;
  return 'never run';
}

export function progressFile(s: Scenario): string {
  return join(s.tier.lakeRoot, '_progress', `${DEFAULT_STREAMING_JOB}.jsonl`);
}

export function ingestProgress(s: Scenario): IngestProgress[] {
  return readProgress(progressFile(s)) as IngestProgress[];
}

/** Per `topic/partition`, the end of the highest offset range any micro-batch has written. */
export function ingestedOffsets(lines: IngestProgress[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of lines) {
    for (const [topic, partitions] of Object.entries(line.offsets ?? {})) {
      for (const [partition, range] of Object.entries(partitions)) {
        const key = `${topic}/${partition}`;
        out.set(key, Math.max(out.get(key) ?? 0, range.end));
      }
    }
  }
  return out;
}

export function ingestJvm(s: Scenario): ProcessInfo | undefined {
  return sparkJvms(s.tier.lakeRoot, 'stream_ingest.py')[0];
}

export interface CurateJob {
  jvm: ProcessInfo;
  fromMs: number;
  toMs: number;
  /** One of the replay's windows (its data is there), not an empty live one. */
  replay: Window | undefined;
}

export function curateJobs(s: Scenario): CurateJob[] {
  return sparkJvms(s.tier.lakeRoot, 'curate.py').map((jvm) => {
    const fromMs = Date.parse(argValue(jvm.argv, '--from') ?? '');
    const toMs = Date.parse(argValue(jvm.argv, '--to') ?? '');
    return { jvm, fromMs, toMs, replay: s.windows.find((w) => w.fromMs === fromMs) };
  });
}

/**
 * The curated tables' data and delete files (Iceberg writes them before its commit names them).
 * A file in a later listing but not an earlier one is a curate's write in progress or just
 * committed: killing its job then kills it mid-MERGE.
 */
export function curatedDataFiles(s: Scenario): Set<string> {
  const files = new Set<string>();
  const walk = (dir: string, rel: string) => {
    let entries;
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch {
      return;
    }
    for (const e of entries) {
      if (e.isDirectory()) walk(join(dir, e.name), `${rel}/${e.name}`);
      else if (e.name.endsWith('.parquet')) files.add(`${rel}/${e.name}`);
    }
  };
  for (const source of SOURCES) {
    const root = join(s.tier.lakeRoot, 'curated', source, 'data');
    if (existsSync(root)) walk(root, `curated/${source}/data`);
  }
  return files;
}

/** The requestBackfill update; the update id makes a repeated request (after a timeout) one request. */
export async function requestBackfill(s: Scenario, windows: Window[], force: boolean): Promise<BackfillOutcome> {
  const from = new Date(windows[0]!.fromMs).toISOString();
  const to = new Date(windows[windows.length - 1]!.toMs).toISOString();
  const updateId = `chaos-backfill-${from}-${to}${force ? `-force-${Date.now()}` : ''}`;
  const outcome = await s.tier.ask(
    (client) => client.workflow.getHandle(PIPELINE_WORKFLOW_ID).executeUpdate(requestBackfillUpdate, { args: [{ from, to, force }], updateId }),
    60_000,
  );
  s.tier.log(
    `backfill ${force ? '(forced) ' : ''}${windows.map(label).join(', ')}: accepted ${outcome.accepted.length}` +
      (outcome.skipped.length ? `, skipped ${outcome.skipped.map((w) => `${w.from.slice(11, 16)} (${w.reason})`).join(', ')}` : ''),
  );
  return outcome;
}

export const sum = (offsets: Map<string, number>) => [...offsets.values()].reduce((a, b) => a + b, 0);

/** Sends one wave of malformed records, each to its topic, acknowledged by Kafka (acks = all). */
export async function injectMalformed(s: Scenario, wave: 1 | 2): Promise<void> {
  const records = malformedRecords(wave);
  await s.tier.until(`Kafka accepting the ${records.length} malformed records`, async () => {
    const producer = createKafka(s.tier.config, { log: () => undefined }).producer({
      idempotent: true,
      maxInFlightRequests: 1,
      allowAutoTopicCreation: false,
      createPartitioner: KEY_PARTITIONER,
    });
    await producer.connect();
    try {
      for (const r of records) await producer.send({ topic: r.topic, acks: -1, messages: [{ key: r.key, value: r.value }] });
    } finally {
      await producer.disconnect();
    }
    return true;
  }, { timeoutMs: 3 * 60_000 });
  s.injected.push(...records);
  s.tier.log(`injected ${records.length} malformed records: ${records.map((r) => `${r.key} → ${r.topic} (${r.kind})`).join(', ')}`);
}
