import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { DEFAULT_ROUTE, Route, bearingDeg, compassPoint, distanceM, normalizeDeg, parseRoute } from '../../producers/route';

const LONDON = { lat: 51.5074, lon: -0.1278 };
const BIRMINGHAM = { lat: 52.4862, lon: -1.8904 };

describe('distanceM', () => {
  test('London to Birmingham is about 163 km as the crow flies', () => {
    const km = distanceM(LONDON, BIRMINGHAM) / 1000;
    assert.ok(km > 160 && km < 166, `${km} km`);
  });

  test('is symmetric and zero from a point to itself', () => {
    assert.equal(distanceM(LONDON, LONDON), 0);
    assert.ok(Math.abs(distanceM(LONDON, BIRMINGHAM) - distanceM(BIRMINGHAM, LONDON)) < 1e-6);
  });

  test('one degree of latitude is about 111 km', () => {
    const m = distanceM({ lat: 0, lon: 0 }, { lat: 1, lon: 0 });
    assert.ok(Math.abs(m - 111_195) < 10, `${m} m`);
  });
});

describe('bearingDeg', () => {
  test('points north, east, south and west along the axes', () => {
    assert.ok(Math.abs(bearingDeg({ lat: 0, lon: 0 }, { lat: 1, lon: 0 }) - 0) < 1e-9);
    assert.ok(Math.abs(bearingDeg({ lat: 0, lon: 0 }, { lat: 0, lon: 1 }) - 90) < 1e-9);
    assert.ok(Math.abs(bearingDeg({ lat: 1, lon: 0 }, { lat: 0, lon: 0 }) - 180) < 1e-9);
    assert.ok(Math.abs(bearingDeg({ lat: 0, lon: 1 }, { lat: 0, lon: 0 }) - 270) < 1e-9);
  });

  test('London to Birmingham heads north-west', () => {
    const b = bearingDeg(LONDON, BIRMINGHAM);
    assert.ok(b > 300 && b < 320, `${b}°`);
  });

  test('is always in [0, 360)', () => {
    for (const to of [{ lat: 51.5075, lon: -0.1278 }, { lat: 51.5, lon: -0.12780001 }, { lat: -10, lon: 170 }]) {
      const b = bearingDeg(LONDON, to);
      assert.ok(b >= 0 && b < 360, `${b}°`);
    }
  });
});

describe('normalizeDeg', () => {
  test('maps any angle into [0, 360)', () => {
    assert.equal(normalizeDeg(360), 0);
    assert.equal(normalizeDeg(-90), 270);
    assert.equal(normalizeDeg(725), 5);
    assert.equal(normalizeDeg(-1e-14), 0);
  });
});

describe('compassPoint', () => {
  test('gives each of the 8 points a 45° sector centred on it', () => {
    const cases: [number, string][] = [
      [0, 'N'], [22.4, 'N'], [22.5, 'NE'], [45, 'NE'], [90, 'E'], [135, 'SE'], [180, 'S'],
      [225, 'SW'], [270, 'W'], [292.4, 'W'], [292.5, 'NW'], [315, 'NW'], [337.4, 'NW'], [337.5, 'N'], [359.9, 'N'],
    ];
    for (const [bearing, point] of cases) assert.equal(compassPoint(bearing), point, `${bearing}°`);
  });

  test('accepts angles outside [0, 360)', () => {
    assert.equal(compassPoint(-45), 'NW');
    assert.equal(compassPoint(360), 'N');
  });
});

describe('DEFAULT_ROUTE', () => {
  test('goes from London to Birmingham through 4 to 6 intermediate points', () => {
    assert.deepEqual(DEFAULT_ROUTE[0], LONDON);
    assert.deepEqual(DEFAULT_ROUTE[DEFAULT_ROUTE.length - 1], BIRMINGHAM);
    assert.ok(DEFAULT_ROUTE.length >= 6 && DEFAULT_ROUTE.length <= 8);
  });

  test('heads north-west on every leg', () => {
    for (let i = 1; i < DEFAULT_ROUTE.length; i++) {
      const b = bearingDeg(DEFAULT_ROUTE[i - 1]!, DEFAULT_ROUTE[i]!);
      assert.ok(b > 270 && b < 360, `leg ${i}: ${b}°`);
    }
  });

  test('is a road trip of 160 to 190 km, a little longer than the straight line', () => {
    const km = new Route().lengthM / 1000;
    assert.ok(km > 160 && km < 190, `${km} km`);
    assert.ok(km > distanceM(LONDON, BIRMINGHAM) / 1000);
  });

  test('cannot be changed by a caller', () => {
    assert.throws(() => {
      (DEFAULT_ROUTE as { lat: number; lon: number }[]).push({ lat: 0, lon: 0 });
    });
    assert.throws(() => {
      (DEFAULT_ROUTE[0] as { lat: number }).lat = 0;
    });
  });
});

describe('Route.pointAt', () => {
  const route = new Route();

  test('is the first waypoint at 0 and exactly the last waypoint at the full length', () => {
    assert.deepEqual(route.pointAt(0), DEFAULT_ROUTE[0]);
    assert.deepEqual(route.pointAt(route.lengthM), DEFAULT_ROUTE[DEFAULT_ROUTE.length - 1]);
  });

  test('clamps distances before the start and past the end', () => {
    assert.deepEqual(route.pointAt(-5), DEFAULT_ROUTE[0]);
    assert.deepEqual(route.pointAt(route.lengthM + 1000), DEFAULT_ROUTE[DEFAULT_ROUTE.length - 1]);
  });

  test('passes through every waypoint at its distance along the route', () => {
    let along = 0;
    for (let i = 1; i < DEFAULT_ROUTE.length - 1; i++) {
      along += distanceM(DEFAULT_ROUTE[i - 1]!, DEFAULT_ROUTE[i]!);
      assert.ok(distanceM(route.pointAt(along), DEFAULT_ROUTE[i]!) < 0.01, `waypoint ${i}`);
    }
  });

  test('advances by the requested distance: 100 m steps are 100 m apart', () => {
    const corners: number[] = [];
    for (let i = 1, along = 0; i < DEFAULT_ROUTE.length - 1; i++) corners.push((along += distanceM(DEFAULT_ROUTE[i - 1]!, DEFAULT_ROUTE[i]!)));
    for (let d = 100; d <= route.lengthM; d += 100) {
      const step = distanceM(route.pointAt(d - 100), route.pointAt(d));
      // A step around a waypoint cuts the corner, so it is shorter than the path it follows.
      const cutsCorner = corners.some((c) => c > d - 100 && c < d);
      assert.ok(step <= 100.001 && step > (cutsCorner ? 90 : 99.999), `at ${d} m: ${step} m`);
    }
  });

  test('a point within a leg stays on the straight line between its waypoints', () => {
    const first = distanceM(DEFAULT_ROUTE[0]!, DEFAULT_ROUTE[1]!);
    const p = route.pointAt(first / 3);
    const detour = distanceM(DEFAULT_ROUTE[0]!, p) + distanceM(p, DEFAULT_ROUTE[1]!) - first;
    assert.ok(Math.abs(detour) < 0.01, `${detour} m`);
    assert.ok(Math.abs(distanceM(DEFAULT_ROUTE[0]!, p) - first / 3) < 0.01);
  });

  test('a new Route rejects what parseRoute rejects', () => {
    assert.throws(() => new Route('51.5,-0.12'), /at least 2 points/);
  });
});

describe('parseRoute', () => {
  test('reads the text form "lat,lon;lat,lon;…", spaces and a trailing ";" allowed', () => {
    assert.deepEqual(parseRoute(' 51.5074,-0.1278 ; 52.4862, -1.8904;'), [LONDON, BIRMINGHAM]);
    assert.deepEqual(parseRoute('0,0;-1.5e1,+.5'), [{ lat: 0, lon: 0 }, { lat: -15, lon: 0.5 }]);
  });

  test('reads an array of {lat, lon} and keeps only lat and lon', () => {
    const points = parseRoute([{ ...LONDON, name: 'London' }, BIRMINGHAM]);
    assert.deepEqual(points, [LONDON, BIRMINGHAM]);
    assert.notEqual(points[1], BIRMINGHAM);
  });

  test('accepts the extremes of the coordinate ranges', () => {
    assert.deepEqual(parseRoute('90,180;89,179'), [{ lat: 90, lon: 180 }, { lat: 89, lon: 179 }]);
    assert.equal(parseRoute([{ lat: -90, lon: -180 }, { lat: -89, lon: -179 }]).length, 2);
  });

  test('rejects fewer than 2 points', () => {
    assert.throws(() => parseRoute([LONDON]), /a route needs at least 2 points \(start and destination\), got 1/);
    assert.throws(() => parseRoute([]), /at least 2 points.*got 0/);
    assert.throws(() => parseRoute(''), /at least 2 points.*got 0/);
    assert.throws(() => parseRoute('51.5,-0.12'), /at least 2 points.*got 1/);
  });

  test('rejects coordinates out of range, naming the point', () => {
    assert.throws(() => parseRoute([LONDON, { lat: 91, lon: 0 }]), /route point 2: lat 91 is outside \[-90, 90\]/);
    assert.throws(() => parseRoute('51.5,-0.12;52,-181'), /route point 2 "52,-181": lon -181 is outside \[-180, 180\]/);
  });

  test('rejects NaN, infinities and non-numbers', () => {
    assert.throws(() => parseRoute([LONDON, { lat: Number.NaN, lon: 0 }]), /route point 2: lat must be a finite number, got NaN/);
    assert.throws(() => parseRoute([{ lat: 51, lon: Infinity }, LONDON]), /route point 1: lon must be a finite number/);
    assert.throws(() => parseRoute([LONDON, { lat: '52.4', lon: -1.9 }]), /route point 2: lat must be a number, got "52.4"/);
    assert.throws(() => parseRoute([LONDON, { lat: 52.4 }]), /route point 2: lon must be a number, got nothing/);
    assert.throws(() => parseRoute('51.5,-0.12;abc,1'), /route point 2 "abc,1": lat must be a number/);
    assert.throws(() => parseRoute('51.5,-0.12;NaN,1'), /lat must be a number/);
    assert.throws(() => parseRoute('51.5,-0.12;0x10,1'), /lat must be a number/);
    assert.throws(() => parseRoute('51.5,;52,-1'), /route point 1 "51.5,": lon must be a number/);
  });

  test('rejects a point that is not a pair', () => {
    assert.throws(() => parseRoute('51.5,-0.12,3;52,-1'), /route point 1 "51.5,-0.12,3": expected "lat,lon"/);
    assert.throws(() => parseRoute([LONDON, [52.4, -1.9]]), /route point 2: expected an object \{lat, lon\}/);
    assert.throws(() => parseRoute([LONDON, null]), /route point 2: expected an object/);
  });

  test('rejects the same place twice in a row', () => {
    assert.throws(() => parseRoute([LONDON, BIRMINGHAM, BIRMINGHAM]), /route point 3 repeats point 2 \(52.4862, -1.8904\): consecutive points must differ/);
    assert.throws(() => parseRoute('51.5,-0.12;51.5,-0.12'), /route point 2 repeats point 1/);
  });

  test('allows returning to an earlier place (a round trip)', () => {
    assert.equal(parseRoute([LONDON, BIRMINGHAM, LONDON]).length, 3);
  });

  test('rejects legs too long to be a road', () => {
    assert.throws(() => parseRoute('51.5,-0.12;-33.9,151.2'), /route points 1 and 2 are \d+ km apart; add waypoints in between/);
  });

  test('rejects input that is neither an array nor a string', () => {
    for (const input of [undefined, null, 42, { lat: 1, lon: 2 }]) {
      assert.throws(() => parseRoute(input), /a route must be an array of \{lat, lon\} points or a string "lat,lon;lat,lon;…"/);
    }
  });
});
