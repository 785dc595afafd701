// Deterministic identifiers. An event re-sent after a crash or a resumed journey must keep its id,
// because the curated layer and the warehouse deduplicate on eventId.
import { createHash } from 'node:crypto';
import type { Source } from '../schemas';

/** RFC 4122 appendix C namespace for names that are URLs. */
const URL_NAMESPACE = '6ba7b811-9dad-11d1-80b4-00c04fd430c8';

function uuidBytes(uuid: string): Buffer {
  const hex = uuid.replaceAll('-', '');
  if (!/^[0-9a-f]{32}$/i.test(hex)) throw new Error(`not a UUID: ${JSON.stringify(uuid)}`);
  return Buffer.from(hex, 'hex');
}

function nameBasedUuid(namespace: Buffer, name: string): string {
  const hash = createHash('sha1').update(namespace).update(name, 'utf8').digest();
  hash[6] = (hash[6]! & 0x0f) | 0x50; // version 5
  hash[8] = (hash[8]! & 0x3f) | 0x80; // RFC 4122 variant
  const hex = hash.toString('hex', 0, 16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/** Name-based UUID, version 5 (SHA-1), as in RFC 4122 section 4.3. */
export function uuidV5(name: string, namespace: string): string {
  return nameBasedUuid(uuidBytes(namespace), name);
}

export const EVENT_NAMESPACE = uuidV5('https://smartcity.local/ids/event', URL_NAMESPACE);
export const INCIDENT_NAMESPACE = uuidV5('https://smartcity.local/ids/incident', URL_NAMESPACE);

const eventNamespace = uuidBytes(EVENT_NAMESPACE);
const incidentNamespace = uuidBytes(INCIDENT_NAMESPACE);

// The run key is JSON-quoted and source and seq contain no "/", so the joined name is unambiguous
// whatever the run key or vehicle id contain.

/** The id of the `seq`-th event of `source` from `vehicleId` in the run named `run` (its seed and settings). */
export function eventId(run: string | number, vehicleId: string, source: Source, seq: number): string {
  return nameBasedUuid(eventNamespace, `${JSON.stringify(String(run))}/${vehicleId}/${source}/${seq}`);
}

/** The id of the `index`-th incident `vehicleId` reports in run `run`; its "resolved" update reuses it. */
export function incidentId(run: string | number, vehicleId: string, index: number): string {
  return nameBasedUuid(incidentNamespace, `${JSON.stringify(String(run))}/${vehicleId}/${index}`);
}
