import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { validateEvent, type EventOf, type SmartCityEvent, type Source } from '../../schemas';
import { fleetEvents, journeyEvents, placeCameras, sliceEvents, vehicleIds, type FleetOptions } from '../../producers/fleet';
import { EVENT_NAMESPACE, INCIDENT_NAMESPACE, eventId, incidentId, uuidV5 } from '../../producers/ids';
import { Rng } from '../../producers/rng';
import { DEFAULT_ROUTE, Route, bearingDeg, compassPoint, distanceM } from '../../producers/route';
import { planSlices } from '../../workflows/slices';

// A Tuesday morning: rush hour out of London.
const OPTS: FleetOptions = { vehicles: 4, seed: 2024, start: new Date('2024-05-14T07:30:00Z') };
const fleet = [...fleetEvents(OPTS)];
const journeys = vehicleIds(OPTS).map((_, i) => [...journeyEvents(OPTS, i)]);
const DESTINATION = DEFAULT_ROUTE[DEFAULT_ROUTE.length - 1]!;
const TICK_MS = 5_000;

function only<S extends Source>(events: readonly SmartCityEvent[], source: S): EventOf<S>[] {
  return events.filter((e): e is EventOf<S> => e.source === source);
}

function at(event: SmartCityEvent): number {
  return Date.parse(event.eventTime);
}

function angleBetween(a: number, b: number): number {
  const d = Math.abs(a - b) % 360;
  return d > 180 ? 360 - d : d;
}

const UUID_V5 = /^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

describe('Rng', () => {
  test('the same seed gives the same sequence', () => {
    const a = new Rng(7);
    const b = new Rng(7);
    for (let i = 0; i < 100; i++) assert.equal(a.uint32(), b.uint32());
  });

  test('a forked stream depends on the seed and the label, not on what the parent drew', () => {
    const fresh = new Rng(7).fork('vehicle:1');
    const used = new Rng(7);
    for (let i = 0; i < 10; i++) used.float();
    const forked = used.fork('vehicle:1');
    for (let i = 0; i < 20; i++) assert.equal(forked.float(), fresh.float());
    assert.notEqual(new Rng(7).fork('vehicle:2').float(), new Rng(7).fork('vehicle:1').float());
  });

  test('float is uniform in [0, 1)', () => {
    const rng = new Rng('uniform');
    let sum = 0;
    for (let i = 0; i < 20_000; i++) {
      const x = rng.float();
      assert.ok(x >= 0 && x < 1);
      sum += x;
    }
    assert.ok(Math.abs(sum / 20_000 - 0.5) < 0.01);
  });

  test('normal has the requested mean and standard deviation', () => {
    const rng = new Rng('normal');
    const xs = Array.from({ length: 20_000 }, () => rng.normal(10, 2));
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    const sd = Math.sqrt(xs.reduce((s, x) => s + (x - mean) ** 2, 0) / xs.length);
    assert.ok(Math.abs(mean - 10) < 0.05, `mean ${mean}`);
    assert.ok(Math.abs(sd - 2) < 0.05, `sd ${sd}`);
  });

  test('exponential intervals are positive with the requested mean', () => {
    const rng = new Rng('poisson');
    const xs = Array.from({ length: 20_000 }, () => rng.exponential(30));
    assert.ok(xs.every((x) => x >= 0 && Number.isFinite(x)));
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    assert.ok(Math.abs(mean - 30) < 1, `mean ${mean}`);
  });

  test('int, range, pick and weighted stay within their bounds', () => {
    const rng = new Rng(1);
    for (let i = 0; i < 1000; i++) {
      const n = rng.int(3, 5);
      assert.ok(Number.isInteger(n) && n >= 3 && n <= 5);
      const r = rng.range(-2, 2);
      assert.ok(r >= -2 && r < 2);
      assert.ok(['a', 'b'].includes(rng.pick(['a', 'b'])));
      assert.equal(rng.weighted([['never', 0], ['always', 1]]), 'always');
    }
    assert.throws(() => rng.pick([]), /no items/);
    assert.throws(() => rng.weighted([['x', 0]]), /weights/);
  });

  test('unitAt is a fixed value per coordinate that draws nothing', () => {
    const a = new Rng(5);
    const b = new Rng(5);
    assert.equal(a.unitAt(3, -4), b.unitAt(3, -4));
    assert.notEqual(a.unitAt(3, -4), a.unitAt(-4, 3));
    assert.equal(a.uint32(), b.uint32());
  });
});

describe('ids', () => {
  test('uuidV5 matches the RFC 4122 reference (www.example.com in the DNS namespace)', () => {
    assert.equal(uuidV5('www.example.com', '6ba7b810-9dad-11d1-80b4-00c04fd430c8'), '2ed6657d-e927-568b-95e1-2665a8aea6a2');
  });

  test('event ids are version 5 UUIDs fixed by seed, vehicle, source and seq', () => {
    const id = eventId(1, 'vehicle-001', 'gps', 0);
    assert.match(id, UUID_V5);
    assert.equal(eventId(1, 'vehicle-001', 'gps', 0), id);
    const variants = [eventId(2, 'vehicle-001', 'gps', 0), eventId(1, 'vehicle-002', 'gps', 0), eventId(1, 'vehicle-001', 'vehicle', 0), eventId(1, 'vehicle-001', 'gps', 1)];
    assert.equal(new Set([id, ...variants]).size, 5);
  });

  test('incident ids live in their own namespace', () => {
    assert.notEqual(EVENT_NAMESPACE, INCIDENT_NAMESPACE);
    assert.match(incidentId(1, 'vehicle-001', 0), UUID_V5);
    assert.notEqual(incidentId(1, 'vehicle-001', 0), incidentId(1, 'vehicle-001', 1));
  });
});

describe('fleet options', () => {
  test('vehicle ids are vehicle-001, vehicle-002, …', () => {
    assert.deepEqual(vehicleIds({ vehicles: 3 }), ['vehicle-001', 'vehicle-002', 'vehicle-003']);
  });

  test('bad options fail when the generator is created, naming the option', () => {
    assert.throws(() => fleetEvents({ ...OPTS, vehicles: 0 }), /vehicles must be an integer from 1/);
    assert.throws(() => fleetEvents({ ...OPTS, vehicles: 1.5 }), /vehicles/);
    assert.throws(() => fleetEvents({ ...OPTS, seed: Number.NaN }), /seed must be an integer/);
    assert.throws(() => fleetEvents({ ...OPTS, start: new Date('not a date') }), /start must be a valid Date/);
    assert.throws(() => fleetEvents({ ...OPTS, tickSeconds: 0 }), /tickSeconds/);
    assert.throws(() => fleetEvents({ ...OPTS, weatherIntervalSeconds: -60 }), /weatherIntervalSeconds/);
    assert.throws(() => fleetEvents({ ...OPTS, route: '51.5,-0.12' }), /at least 2 points/);
    assert.throws(() => journeyEvents(OPTS, 4), /vehicleIndex must be an integer from 0 to 3, got 4/);
  });
});

describe('fleet events', () => {
  test('every event validates against its schema', () => {
    for (const event of fleet) {
      const result = validateEvent(event);
      assert.ok(result.ok, `${JSON.stringify(event)}: ${result.ok ? '' : result.errors.join('; ')}`);
    }
  });

  test('the fleet stream is every journey, merged by eventTime', () => {
    assert.equal(fleet.length, journeys.reduce((n, j) => n + j.length, 0));
    for (let i = 1; i < fleet.length; i++) assert.ok(at(fleet[i - 1]!) <= at(fleet[i]!), `event ${i} goes back in time`);
    vehicleIds(OPTS).forEach((id, i) => assert.deepEqual(fleet.filter((e) => e.vehicleId === id), journeys[i]));
  });

  test("a slice is exactly its vehicles' events of the fleet, in the fleet's order: slicing changes no event and no id", () => {
    for (const slices of [1, 2, 3, 4]) {
      const plan = planSlices(OPTS.vehicles, slices);
      assert.equal(plan.reduce((n, s) => n + s.vehicles, 0), OPTS.vehicles);
      for (const slice of plan) {
        const mine = new Set(vehicleIds(OPTS).slice(slice.firstVehicle, slice.firstVehicle + slice.vehicles));
        assert.deepEqual([...sliceEvents(OPTS, slice.firstVehicle, slice.vehicles)], fleet.filter((e) => mine.has(e.vehicleId)), JSON.stringify(slice));
      }
    }
    assert.deepEqual([...sliceEvents(OPTS, 2, 1)], journeys[2]);
    assert.throws(() => sliceEvents(OPTS, 3, 2), /a slice must be 1 to 4 consecutive vehicles of the fleet, got 2 from index 3/);
  });

  test('the slice plan covers any fleet in at most 8 near-equal slices, one per 250 vehicles by default', () => {
    assert.deepEqual(planSlices(3), [{ index: 0, firstVehicle: 0, vehicles: 3 }]);
    assert.deepEqual(
      planSlices(1_000).map((s) => s.vehicles),
      [250, 250, 250, 250],
    );
    assert.deepEqual(
      planSlices(9_999).map((s) => s.vehicles),
      [1250, 1250, 1250, 1250, 1250, 1250, 1250, 1249],
    );
    assert.deepEqual(planSlices(5, 3), [
      { index: 0, firstVehicle: 0, vehicles: 2 },
      { index: 1, firstVehicle: 2, vehicles: 2 },
      { index: 2, firstVehicle: 4, vehicles: 1 },
    ]);
  });

  test('the same options give the same events with the same ids', () => {
    assert.deepEqual([...fleetEvents({ ...OPTS, start: new Date(OPTS.start) })], fleet);
  });

  test('another seed gives other events and other ids', () => {
    const other = [...fleetEvents({ ...OPTS, seed: OPTS.seed + 1 })];
    const ids = new Set(fleet.map((e) => e.eventId));
    assert.ok(other.every((e) => !ids.has(e.eventId)));
    assert.notDeepEqual(
      other.filter((e) => e.source === 'vehicle').map((e) => e.speedKmh),
      fleet.filter((e) => e.source === 'vehicle').map((e) => e.speedKmh),
    );
  });

  test('the same seed with another start or route gives other ids, so downstream dedupe keeps both runs', () => {
    const ids = new Set(fleet.map((e) => e.eventId));
    const later = [...journeyEvents({ ...OPTS, start: new Date(OPTS.start.getTime() + 3_600_000) }, 0)];
    const elsewhere = [...journeyEvents({ ...OPTS, route: '52.4862,-1.8904;51.5074,-0.1278' }, 0)];
    assert.ok(later.every((e) => !ids.has(e.eventId)));
    assert.ok(elsewhere.every((e) => !ids.has(e.eventId)));
  });

  test('event ids are unique', () => {
    assert.equal(new Set(fleet.map((e) => e.eventId)).size, fleet.length);
  });

  test('a vehicle is the same vehicle whatever the size of the fleet', () => {
    assert.deepEqual([...journeyEvents({ ...OPTS, vehicles: 50 }, 2)], journeys[2]);
  });

  test('eventTime is UTC ISO-8601 with milliseconds and a trailing Z', () => {
    for (const event of fleet) assert.match(event.eventTime, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  });

  test('seq counts each vehicle\'s events of each source from 0 without gaps', () => {
    for (const journey of journeys) {
      for (const source of ['vehicle', 'gps', 'traffic', 'weather', 'emergency'] as const) {
        assert.deepEqual(only(journey, source).map((e) => e.seq), only(journey, source).map((_, i) => i), source);
      }
    }
  });

  test('each vehicle has one device per source, its own', () => {
    const seen = new Map<string, string>();
    for (const e of fleet) {
      const key = `${e.vehicleId}/${e.source}`;
      if (!seen.has(key)) seen.set(key, e.deviceId);
      assert.equal(e.deviceId, seen.get(key), key);
    }
    assert.equal(new Set(seen.values()).size, seen.size);
  });

  test('each journey is in eventTime order', () => {
    for (const journey of journeys) {
      for (let i = 1; i < journey.length; i++) assert.ok(at(journey[i - 1]!) <= at(journey[i]!), `${journey[i]!.vehicleId} event ${i}`);
    }
  });

  test('the first vehicle departs at start, the others within ten minutes', () => {
    const departures = journeys.map((j) => at(j[0]!));
    assert.equal(departures[0], OPTS.start.getTime());
    for (const d of departures) assert.ok(d >= OPTS.start.getTime() && d <= OPTS.start.getTime() + 600_000);
    assert.ok(new Set(departures).size > 1);
  });
});

describe('a journey', () => {
  const journey = journeys[1]!;
  const vehicle = only(journey, 'vehicle');
  const gps = only(journey, 'gps');

  test('departs from the first waypoint and ends exactly at the destination with "arrived"', () => {
    assert.equal(vehicle[0]!.journeyStatus, 'departed');
    assert.deepEqual(vehicle[0]!.location, DEFAULT_ROUTE[0]);
    const last = vehicle[vehicle.length - 1]!;
    assert.equal(last.journeyStatus, 'arrived');
    assert.deepEqual(last.location, DESTINATION);
    assert.equal(last.speedKmh, 0);
    assert.ok(vehicle.slice(1, -1).every((e) => e.journeyStatus === 'en_route'));
    assert.equal(at(journey[journey.length - 1]!), at(last), 'nothing is sent after the arrival');
  });

  test('ends exactly at the destination on other seeds, tick lengths and routes too', () => {
    const cases: FleetOptions[] = [
      { vehicles: 1, seed: 99, start: OPTS.start, tickSeconds: 1 },
      { vehicles: 1, seed: 5, start: OPTS.start, tickSeconds: 17 },
      { vehicles: 1, seed: 5, start: OPTS.start, route: '53.4808,-2.2426;53.4631,-2.2913' },
    ];
    for (const options of cases) {
      const events = [...journeyEvents(options, 0)];
      const last = only(events, 'vehicle').at(-1)!;
      assert.equal(last.journeyStatus, 'arrived');
      assert.deepEqual(last.location, new Route(options.route).waypoints.at(-1));
      for (const e of events) assert.ok(validateEvent(e).ok);
    }
  });

  test('sends one vehicle and one GPS event per tick, ticks exactly tickSeconds apart', () => {
    assert.deepEqual(gps.map(at), vehicle.map(at));
    for (let i = 1; i < vehicle.length; i++) assert.equal(at(vehicle[i]!) - at(vehicle[i - 1]!), TICK_MS);
  });

  test('moves along the route by the speed times the tick', () => {
    let travelled = 0;
    for (let i = 1; i < vehicle.length; i++) {
      const moved = distanceM(vehicle[i - 1]!.location, vehicle[i]!.location);
      const expected = ((vehicle[i - 1]!.speedKmh + vehicle[i]!.speedKmh) / 2 / 3.6) * (TICK_MS / 1000);
      if (i === vehicle.length - 1) {
        // The last tick stops at the destination, short of where the speed would carry it.
        travelled += moved;
        break;
      }
      travelled += expected;
      // Around a waypoint the straight line between two ticks cuts the corner of the path.
      assert.ok(moved <= expected + 1 && moved >= 0.9 * expected - 1, `tick ${i}: moved ${moved} m, expected ${expected} m`);
    }
    const length = new Route().lengthM;
    assert.ok(Math.abs(travelled - length) < 0.002 * length, `travelled ${travelled} m of ${length} m`);
  });

  test('heads north-west on the default route', () => {
    for (const journey of journeys) {
      const events = only(journey, 'vehicle');
      const northWest = events.filter((e) => e.headingDeg >= 250 || e.headingDeg < 20);
      assert.ok(northWest.length >= 0.9 * events.length, `${northWest.length} of ${events.length}`);
    }
  });

  test('heading is the bearing of the movement since the previous tick; direction its compass point', () => {
    for (let i = 1; i < vehicle.length; i++) {
      const movement = bearingDeg(vehicle[i - 1]!.location, vehicle[i]!.location);
      assert.ok(angleBetween(vehicle[i]!.headingDeg, movement) < 0.1, `tick ${i}: ${vehicle[i]!.headingDeg} vs ${movement}`);
    }
    for (const e of vehicle) assert.equal(e.direction, compassPoint(e.headingDeg));
    assert.ok(angleBetween(vehicle[0]!.headingDeg, bearingDeg(DEFAULT_ROUTE[0]!, DEFAULT_ROUTE[1]!)) < 0.1, 'departure faces the first leg');
  });

  test('speed is never negative, stays below the motorway limit plus a margin, and changes smoothly', () => {
    for (const journey of journeys) {
      const speeds = only(journey, 'vehicle').map((e) => e.speedKmh);
      assert.ok(speeds.every((s) => s >= 0 && s <= 135), 'within 0 to 135 km/h');
      const changes = speeds.slice(1).map((s, i) => Math.abs(s - speeds[i]!));
      // At most 2 m/s² (7.2 km/h per second) between two 5-second ticks.
      assert.ok(Math.max(...changes) <= 36.1, `largest change ${Math.max(...changes)} km/h`);
      const median = [...changes].sort((a, b) => a - b)[changes.length >> 1]!;
      assert.ok(median < 4, `median change ${median} km/h`);
    }
  });

  test('is slower in town at both ends than on the motorway', () => {
    const route = new Route();
    const mean = (xs: number[]): number => xs.reduce((s, x) => s + x, 0) / xs.length;
    const alongAt = (e: EventOf<'vehicle'>): number => distanceM(DEFAULT_ROUTE[0]!, e.location);
    const town = vehicle.filter((e) => alongAt(e) < 3_000 || distanceM(e.location, DESTINATION) < 3_000).map((e) => e.speedKmh);
    const open = vehicle.filter((e) => alongAt(e) > 20_000 && distanceM(e.location, DESTINATION) > 20_000).map((e) => e.speedKmh);
    assert.ok(mean(town) < 50 && mean(open) > 1.4 * mean(town), `town ${mean(town)}, open road ${mean(open)} (route ${route.lengthM} m)`);
  });

  test('GPS always has a location, a few metres from the vehicle and within its stated accuracy', () => {
    for (const [i, fix] of gps.entries()) {
      const off = distanceM(fix.location, vehicle[i]!.location);
      assert.ok(fix.accuracyM > 0 && fix.accuracyM < 50, `accuracy ${fix.accuracyM} m`);
      assert.ok(off < 3 * fix.accuracyM, `tick ${i}: ${off} m off, accuracy ${fix.accuracyM} m`);
      assert.equal(fix.headingDeg, vehicle[i]!.headingDeg);
      assert.ok(Math.abs(fix.speedKmh - vehicle[i]!.speedKmh) < 2);
    }
    assert.ok(gps.some((fix, i) => distanceM(fix.location, vehicle[i]!.location) > 0.5), 'fixes are not exact');
  });

  test('keeps its make, model, year, fuel and vehicle type all the way', () => {
    for (const journey of journeys) {
      const kinds = new Set(only(journey, 'vehicle').map((e) => `${e.make}|${e.model}|${e.year}|${e.fuelType}`));
      assert.equal(kinds.size, 1);
      assert.equal(new Set(only(journey, 'gps').map((e) => e.vehicleType)).size, 1);
    }
  });
});

describe('weather', () => {
  test('is read every minute of sim time from departure, at the vehicle\'s position', () => {
    for (const journey of journeys) {
      const readings = only(journey, 'weather');
      const ticks = new Map(only(journey, 'vehicle').map((e) => [e.eventTime, e]));
      assert.equal(at(readings[0]!), at(journey[0]!));
      for (let i = 1; i < readings.length; i++) assert.equal(at(readings[i]!) - at(readings[i - 1]!), 60_000);
      for (const r of readings) assert.deepEqual(r.location, ticks.get(r.eventTime)?.location);
    }
  });

  test('the interval is configurable', () => {
    const readings = only([...journeyEvents({ ...OPTS, weatherIntervalSeconds: 300 }, 0)], 'weather');
    for (let i = 1; i < readings.length; i++) assert.equal(at(readings[i]!) - at(readings[i - 1]!), 300_000);
  });

  test('temperature drifts: consecutive readings differ by well under a degree', () => {
    for (const journey of journeys) {
      const temps = only(journey, 'weather').map((e) => e.temperatureC);
      for (let i = 1; i < temps.length; i++) assert.ok(Math.abs(temps[i]! - temps[i - 1]!) <= 0.5, `${temps[i - 1]} → ${temps[i]}`);
    }
  });

  test('the condition changes rarely and precipitation matches it', () => {
    for (const journey of journeys) {
      const readings = only(journey, 'weather');
      const changes = readings.slice(1).filter((r, i) => r.condition !== readings[i]!.condition).length;
      assert.ok(changes <= readings.length / 10, `${changes} changes in ${readings.length} readings`);
      for (const r of readings) assert.equal(r.precipitationMm > 0, r.condition === 'rain' || r.condition === 'snow', JSON.stringify(r));
    }
  });

  test('vehicles close together read similar weather', () => {
    const [a, b] = [only(journeys[0]!, 'weather'), only(journeys[1]!, 'weather')];
    const close = a.flatMap((r) => b.filter((s) => Math.abs(at(r) - at(s)) <= 60_000 && distanceM(r.location, s.location) < 2_000).map((s) => [r, s] as const));
    assert.ok(close.length > 0, 'the two vehicles drive near each other at some point');
    for (const [r, s] of close) assert.ok(Math.abs(r.temperatureC - s.temperatureC) < 1.5, `${r.temperatureC} vs ${s.temperatureC}`);
  });
});

describe('traffic cameras', () => {
  const cameras = placeCameras(new Route());

  test('stand about every 8 km along the route, in route order, with stable ids', () => {
    const route = new Route();
    assert.equal(cameras.length, Math.round(route.lengthM / 8_000));
    for (let i = 1; i < cameras.length; i++) {
      const gap = cameras[i]!.distanceM - cameras[i - 1]!.distanceM;
      assert.ok(gap > 4_000 && gap < 12_000, `gap ${gap} m`);
    }
    for (const c of cameras) assert.ok(distanceM(c.location, route.pointAt(c.distanceM)) < 0.01);
    assert.equal(new Set(cameras.map((c) => c.cameraId)).size, cameras.length);
    assert.deepEqual(placeCameras(new Route()), cameras);
  });

  test('each vehicle is seen once by every camera, in route order, at the camera\'s position', () => {
    for (const journey of journeys) {
      const seen = only(journey, 'traffic');
      assert.deepEqual(seen.map((e) => e.cameraId), cameras.map((c) => c.cameraId));
      seen.forEach((e, i) => assert.deepEqual(e.location, cameras[i]!.location));
    }
  });

  test('a sighting falls between the two ticks around it, at about the vehicle\'s speed', () => {
    const vehicle = only(journeys[0]!, 'vehicle');
    for (const sighting of only(journeys[0]!, 'traffic')) {
      const after = vehicle.findIndex((e) => at(e) >= at(sighting));
      const [v0, v1] = [vehicle[after - 1]!, vehicle[after]!];
      assert.ok(at(v0) <= at(sighting) && at(sighting) <= at(v1));
      const [lo, hi] = [Math.min(v0.speedKmh, v1.speedKmh), Math.max(v0.speedKmh, v1.speedKmh)];
      assert.ok(sighting.observedSpeedKmh >= 0.95 * lo - 1 && sighting.observedSpeedKmh <= 1.05 * hi + 1, `${sighting.observedSpeedKmh} vs ${lo}–${hi}`);
    }
  });
});

describe('emergencies', () => {
  const many = [1, 2, 3, 4, 5].flatMap((seed) => [0, 1, 2, 3].map((i) => [...journeyEvents({ ...OPTS, seed }, i)]));
  const ticks = many.reduce((n, j) => n + only(j, 'vehicle').length, 0);
  const drivingMinutes = many.reduce((m, j) => m + (at(j[j.length - 1]!) - at(j[0]!)) / 60_000, 0);
  const reports = many.flatMap((j) => only(j, 'emergency'));
  const active = reports.filter((e) => e.status === 'active');

  test('are rare random arrivals, about one per 30 to 60 minutes of driving, not one per tick', () => {
    assert.ok(active.length > 0, 'the generator does produce incidents');
    assert.ok(active.length < ticks / 200, `${active.length} incidents in ${ticks} ticks`);
    const minutesPerIncident = drivingMinutes / active.length;
    assert.ok(minutesPerIncident > 30 && minutesPerIncident < 60, `one per ${minutesPerIncident} min`);
    assert.ok(many.some((j) => only(j, 'emergency').length === 0) || many.some((j) => only(j, 'emergency').length > 2), 'counts vary from journey to journey');
  });

  test('a "resolved" report follows its incident later, with the same id, type and place', () => {
    const resolved = reports.filter((e) => e.status === 'resolved');
    assert.ok(resolved.length > 0);
    for (const r of resolved) {
      const origin = active.filter((a) => a.incidentId === r.incidentId);
      assert.equal(origin.length, 1);
      assert.equal(origin[0]!.incidentType, r.incidentType);
      assert.deepEqual(origin[0]!.location, r.location);
      assert.ok(at(r) > at(origin[0]!));
      assert.equal(resolved.filter((x) => x.incidentId === r.incidentId).length, 1);
    }
  });

  test('an incident is reported where the vehicle is at that moment', () => {
    const journey = many.find((j) => only(j, 'emergency').length > 0)!;
    const vehicle = only(journey, 'vehicle');
    for (const e of only(journey, 'emergency').filter((x) => x.status === 'active')) {
      const after = vehicle.findIndex((v) => at(v) >= at(e));
      const span = distanceM(vehicle[after - 1]!.location, vehicle[after]!.location);
      assert.ok(distanceM(e.location, vehicle[after]!.location) <= span + 1);
    }
  });
});
