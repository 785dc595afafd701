import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { GENERATED_FILE, renderEventTypes } from '../../schemas/codegen';
import { SOURCES, TOPICS, parseEvent, validateEvent } from '../../schemas';

const gps = {
  eventId: '0b7c5d8e-1f2a-5b3c-8d4e-5f6a7b8c9d0e',
  source: 'gps',
  vehicleId: 'vehicle-001',
  deviceId: 'gps-001',
  seq: 0,
  eventTime: '2026-01-05T07:00:00.000Z',
  schemaVersion: 1,
  location: { lat: 51.5074, lon: -0.1278 },
  speedKmh: 42.5,
  headingDeg: 315,
  accuracyM: 4,
  vehicleType: 'taxi',
};

describe('event contracts', () => {
  test('the generated TypeScript types are up to date with schemas/v1 (run `npm run gen:types`)', async () => {
    assert.equal(readFileSync(GENERATED_FILE, 'utf8'), await renderEventTypes());
  });

  test('every source has a schema and a topic of the original system', () => {
    assert.deepEqual(SOURCES.map((s) => TOPICS[s]), ['vehicle_data', 'gps_data', 'traffic_data', 'weather_data', 'emergency_data']);
  });

  test('a valid event passes', () => {
    assert.deepEqual(validateEvent(gps), { ok: true, event: gps });
  });

  test('a new optional field does not invalidate an event (forward compatible)', () => {
    assert.equal(validateEvent({ ...gps, satellites: 9 }).ok, true);
  });

  const broken: [string, unknown, RegExp][] = [
    ['a missing required field', { ...gps, location: undefined }, /missing required field "location"/],
    ['a wrong type', { ...gps, speedKmh: 'fast' }, /speedKmh: must be number/],
    ['an out-of-range value', { ...gps, location: { lat: 91, lon: 0 } }, /location\.lat: must be <= 90/],
    ['a time without Z', { ...gps, eventTime: '2026-01-05T07:00:00+01:00' }, /eventTime: must match pattern "Z\$"/],
    ['a naive time', { ...gps, eventTime: '2026-01-05 07:00:00' }, /eventTime: must match format "date-time"/],
    ['an id that is not a UUID', { ...gps, eventId: 'abc' }, /eventId: must match format "uuid"/],
    ['an unknown source', { ...gps, source: 'bus' }, /unknown source "bus"/],
    ['another schema version', { ...gps, schemaVersion: 2 }, /schemaVersion: must be equal to constant/],
    ['a negative seq', { ...gps, seq: -1 }, /seq: must be >= 0/],
    ['not an object', [1, 2], /must be a JSON object/],
  ];
  for (const [what, event, reason] of broken) {
    test(`${what} is refused with a reason that names the field`, () => {
      const result = validateEvent(event);
      assert.equal(result.ok, false);
      assert.match(result.ok ? '' : result.errors.join('; '), reason);
    });
  }

  test('parseEvent throws one error listing every problem', () => {
    assert.throws(() => parseEvent({ ...gps, speedKmh: -1, accuracyM: 'x' }), /invalid event: speedKmh: must be >= 0; accuracyM: must be number/);
  });
});
