// The event contracts, loaded from the JSON Schema files in schemas/v1 (the only definition;
// PySpark reads the same files). Types come from schemas/generated/events.ts, generated from them.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import Ajv2020, { type ErrorObject, type ValidateFunction } from 'ajv/dist/2020';
import addFormats from 'ajv-formats';
import type { EmergencyEvent, GpsEvent, TrafficEvent, VehicleEvent, WeatherEvent } from './generated/events';
import { SCHEMA_DIR, SOURCE_FILES } from './files';

export type { Envelope, Location, EmergencyEvent, GpsEvent, TrafficEvent, VehicleEvent, WeatherEvent } from './generated/events';

export const SOURCES = ['vehicle', 'gps', 'traffic', 'weather', 'emergency'] as const;
export type Source = (typeof SOURCES)[number];
export type SmartCityEvent = VehicleEvent | GpsEvent | TrafficEvent | WeatherEvent | EmergencyEvent;
export type EventOf<S extends Source> = Extract<SmartCityEvent, { source: S }>;
/** An event before its envelope is stamped: what a simulation decides, minus ids and counters. */
export type PayloadOf<S extends Source> = Omit<EventOf<S>, keyof import('./generated/events').Envelope>;

export const SCHEMA_VERSION = 1;

interface SourceSchema {
  $id: string;
  'x-topic': string;
  properties: { source: { const: string } };
}

function readJson(file: string): unknown {
  return JSON.parse(readFileSync(join(SCHEMA_DIR, file), 'utf8'));
}

const ajv = new Ajv2020({ allErrors: true, strict: true, strictRequired: false });
ajv.addKeyword('x-topic');
addFormats(ajv, ['uuid', 'date-time']);
ajv.addSchema(readJson('envelope.json') as object);

const sourceSchemas = new Map<string, { topic: string; validate: ValidateFunction }>();
for (const file of SOURCE_FILES) {
  const schema = readJson(file) as SourceSchema;
  const source = schema.properties.source.const;
  sourceSchemas.set(source, { topic: schema['x-topic'], validate: ajv.compile(schema) });
}
for (const source of SOURCES) {
  if (!sourceSchemas.has(source)) throw new Error(`schemas/v1 has no definition for source "${source}"`);
}

/** Kafka topic of each source, as declared by `x-topic` in its schema. */
export const TOPICS = Object.fromEntries(SOURCES.map((s) => [s, sourceSchemas.get(s)!.topic])) as Record<Source, string>;

export function isSource(value: unknown): value is Source {
  return typeof value === 'string' && (SOURCES as readonly string[]).includes(value);
}

export type Validation = { ok: true; event: SmartCityEvent } | { ok: false; errors: string[] };

function describe(error: ErrorObject): string {
  const where = error.instancePath === '' ? 'event' : error.instancePath.slice(1).replaceAll('/', '.');
  if (error.keyword === 'required') return `${where}: missing required field "${String(error.params.missingProperty)}"`;
  return `${where}: ${error.message ?? error.keyword}`;
}

/** Checks a decoded event against the definition of its `source`; never throws. */
export function validateEvent(value: unknown): Validation {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    return { ok: false, errors: ['event: must be a JSON object'] };
  }
  const source = (value as { source?: unknown }).source;
  const entry = typeof source === 'string' ? sourceSchemas.get(source) : undefined;
  if (!entry) {
    return { ok: false, errors: [`source: unknown source ${JSON.stringify(source)}; expected one of ${SOURCES.join(', ')}`] };
  }
  if (entry.validate(value)) return { ok: true, event: value as SmartCityEvent };
  return { ok: false, errors: (entry.validate.errors ?? []).map(describe) };
}

/** Like validateEvent, but throws one error listing every problem. */
export function parseEvent(value: unknown): SmartCityEvent {
  const result = validateEvent(value);
  if (!result.ok) throw new Error(`invalid event: ${result.errors.join('; ')}`);
  return result.event;
}
