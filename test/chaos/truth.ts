// What the chaos run must end with, from sources independent of the pipeline: the deterministic
// generator (the events the replay produces, cut at its duration), the malformed records the tier
// injects itself, and the windows its time range covers; and the comparisons of those with what
// the lake and the warehouse hold, worded so that a failure says which events and windows.
import { fleetEvents, journeyEvents, type FleetOptions } from '../../producers/fleet';
import { SOURCES, TOPICS, type SmartCityEvent, type Source } from '../../schemas';
import { windowKey, type IdCounts, type QuarantineRow } from '../helpers/lake';

export interface Replay {
  vehicles: number;
  seed: number;
  start: Date;
  durationMinutes: number;
  speedup: number;
}

export interface Window {
  fromMs: number;
  toMs: number;
  key: string;
}

export function windowsCovering(fromMs: number, toMs: number, sizeMs: number): Window[] {
  const out: Window[] = [];
  for (let w = Math.floor(fromMs / sizeMs) * sizeMs; w < toMs; w += sizeMs) out.push({ fromMs: w, toMs: w + sizeMs, key: windowKey(w, w + sizeMs) });
  return out;
}

export const label = (w: Window) => `${new Date(w.fromMs).toISOString().slice(11, 16)}–${new Date(w.toMs).toISOString().slice(11, 16)}`;

/** Every event the replay produces: per source, event id → event time (ms). */
export type Expected = Record<Source, Map<string, number>>;

export function expectedEvents(replay: Replay): Expected {
  const options: FleetOptions = { vehicles: replay.vehicles, seed: replay.seed, start: replay.start };
  const endMs = replay.start.getTime() + replay.durationMinutes * 60_000;
  const out = Object.fromEntries(SOURCES.map((s) => [s, new Map<string, number>()])) as Expected;
  for (let vehicle = 0; vehicle < replay.vehicles; vehicle++) {
    for (const event of journeyEvents(options, vehicle)) {
      const at = Date.parse(event.eventTime);
      // The fleet workflow stops each journey at the first event at or after its end.
      if (at >= endMs) break;
      out[event.source].set(event.eventId, at);
    }
  }
  return out;
}

export function total(expected: Expected): number {
  return SOURCES.reduce((n, s) => n + expected[s].size, 0);
}

// ---- malformed records ---------------------------------------------------------------------

export interface Malformed {
  key: string;
  topic: string;
  value: Buffer | null;
  /** The error_kind the ingest job must record. */
  kind: string;
}

/** Valid events of a run no replay makes (another seed, years back): bent into invalid ones below. */
function samples(): Record<Source, SmartCityEvent> {
  const out: Partial<Record<Source, SmartCityEvent>> = {};
  for (const event of fleetEvents({ vehicles: 1, seed: 4242, start: new Date('2020-01-06T08:00:00Z') })) {
    out[event.source] ??= event;
    if (out.vehicle && out.weather) break;
  }
  return out as Record<Source, SmartCityEvent>;
}

const json = (value: unknown) => Buffer.from(JSON.stringify(value));

/** Two sets of records that must each land in quarantine once, with a reason: one per wave. */
export function malformedRecords(wave: 1 | 2): Malformed[] {
  const { vehicle, weather } = samples();
  const key = (n: number) => `chaos-malformed-${wave}-${n}`;
  if (wave === 1) {
    const { eventId: _dropped, ...noId } = weather;
    return [
      { key: key(1), topic: TOPICS.vehicle, value: Buffer.from('{"source": "vehicle", "eventId": '), kind: 'invalid_json' },
      { key: key(2), topic: TOPICS.gps, value: Buffer.from('[1, 2, 3]'), kind: 'not_an_object' },
      { key: key(3), topic: TOPICS.weather, value: json(noId), kind: 'missing_field' },
      { key: key(4), topic: TOPICS.traffic, value: json(vehicle), kind: 'source_mismatch' },
    ];
  }
  return [
    { key: key(1), topic: TOPICS.emergency, value: Buffer.from([0xff, 0xfe, 0x7b]), kind: 'bad_utf8' },
    { key: key(2), topic: TOPICS.vehicle, value: json({ ...vehicle, speedKmh: -5 }), kind: 'out_of_range' },
    { key: key(3), topic: TOPICS.gps, value: null, kind: 'no_value' },
    { key: key(4), topic: TOPICS.weather, value: json({ ...weather, eventTime: weather.eventTime.replace('Z', '+01:00') }), kind: 'bad_format' },
  ];
}

// ---- comparisons ---------------------------------------------------------------------------

export interface Verdict {
  passed: boolean;
  detail: string;
}

const examples = (items: string[], n = 3) => `${items.slice(0, n).join(', ')}${items.length > n ? ', …' : ''}`;

/**
 * A layer against the generator: every expected event id `exactly` once (or, for raw, at least
 * once), and no id the generator did not make. Missing events are grouped by window with what
 * `windowState` says of it, so a loss shows where it happened.
 */
export function compareIds(
  expected: Expected,
  actual: Record<Source, IdCounts>,
  windows: Window[],
  windowState: (w: Window) => string,
  mode: 'exactly-once' | 'at-least-once',
): Verdict {
  const missing: { source: Source; id: string; at: number }[] = [];
  const duplicated: string[] = [];
  const unexpected: string[] = [];
  let extraCopies = 0;
  for (const source of SOURCES) {
    const have = actual[source].counts;
    for (const [id, at] of expected[source]) {
      const copies = have.get(id) ?? 0;
      if (copies === 0) missing.push({ source, id, at });
      else if (copies > 1) {
        extraCopies += copies - 1;
        if (mode === 'exactly-once') duplicated.push(`${source} ${id} ×${copies}`);
      }
    }
    for (const [id, copies] of have) if (!expected[source].has(id)) unexpected.push(`${source} ${id} ×${copies}`);
  }
  const problems: string[] = [];
  if (missing.length > 0) {
    const byWindow = new Map<Window, number>();
    for (const m of missing) {
      const w = windows.find((x) => m.at >= x.fromMs && m.at < x.toMs);
      if (w) byWindow.set(w, (byWindow.get(w) ?? 0) + 1);
    }
    const where = [...byWindow].map(([w, n]) => `${label(w)} ×${n} (${windowState(w)})`);
    problems.push(`${missing.length} missing, by window: ${examples(where, 6)}; e.g. ${examples(missing.map((m) => `${m.source} ${m.id} at ${new Date(m.at).toISOString().slice(11, 19)}`))}`);
  }
  if (duplicated.length > 0) problems.push(`${duplicated.length} held more than once: ${examples(duplicated)}`);
  if (unexpected.length > 0) problems.push(`${unexpected.length} id(s) the generator never made: ${examples(unexpected)}`);
  const count = total(expected);
  if (problems.length > 0) return { passed: false, detail: `of ${count} generated events: ${problems.join('; ')}` };
  const copies = mode === 'at-least-once' && extraCopies > 0 ? ` (plus ${extraCopies} duplicate cop${extraCopies === 1 ? 'y' : 'ies'} for curate to drop)` : '';
  return { passed: true, detail: `all ${count} generated events, ${mode === 'exactly-once' ? 'each exactly once' : 'each at least once'}${copies}, nothing else` };
}

/** Quarantine against what was injected: each record once, on its topic, with a reason of the right kind; nothing else. */
export function compareQuarantine(injected: Malformed[], rows: QuarantineRow[]): Verdict {
  const problems: string[] = [];
  for (const record of injected) {
    const found = rows.filter((r) => r.kafkaKey === record.key);
    if (found.length !== 1) {
      problems.push(`${record.key} (${record.kind}) is there ${found.length} time(s)`);
      continue;
    }
    const row = found[0]!;
    if (row.kafkaTopic !== record.topic) problems.push(`${record.key} came from ${row.kafkaTopic}, sent to ${record.topic}`);
    if (!row.reason) problems.push(`${record.key} has no reason`);
    if (row.errorKind !== record.kind) problems.push(`${record.key}: error kind ${row.errorKind}, expected ${record.kind} (reason: ${row.reason})`);
  }
  const keys = new Set(injected.map((r) => r.key));
  const others = rows.filter((r) => r.kafkaKey === null || !keys.has(r.kafkaKey));
  if (others.length > 0) {
    problems.push(`${others.length} record(s) nobody injected: ${examples(others.map((r) => `${r.kafkaTopic}/${r.kafkaPartition}@${r.kafkaOffset} key ${r.kafkaKey} (${r.reason})`))}`);
  }
  if (problems.length > 0) return { passed: false, detail: problems.join('; ') };
  return { passed: true, detail: `the ${injected.length} injected malformed records, each once with its reason (${[...new Set(injected.map((r) => r.kind))].join(', ')}), nothing else` };
}
