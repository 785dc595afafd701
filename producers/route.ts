// Route geometry on a spherical Earth. Vehicles move along great-circle segments between
// waypoints; at road scale the sphere is far more accurate than the simulation needs.
import type { VehicleEvent } from '../schemas';

export interface Waypoint {
  lat: number;
  lon: number;
}

/** What a user may give as a route: points, or the text form "lat,lon;lat,lon;…". */
export type RouteInput = readonly Waypoint[] | string;

export type CompassPoint = VehicleEvent['direction'];

/** Mean Earth radius (IUGG). */
const EARTH_RADIUS_M = 6_371_008.8;
/** Consecutive points closer than this are the same place: the segment would have no bearing. */
const MIN_SEGMENT_M = 1;
/** A longer segment is no road, and great-circle interpolation degenerates near antipodes. */
const MAX_SEGMENT_M = 2_000_000;

const RAD = Math.PI / 180;

/**
 * London to Birmingham, roughly along the M1 and the M6, the route of the system we replace.
 * Every leg heads north-west.
 */
export const DEFAULT_ROUTE: readonly Waypoint[] = Object.freeze([
  { lat: 51.5074, lon: -0.1278 }, // London
  { lat: 51.6565, lon: -0.3903 }, // Watford
  { lat: 52.0406, lon: -0.7594 }, // Milton Keynes
  { lat: 52.2405, lon: -0.9027 }, // Northampton
  { lat: 52.3709, lon: -1.265 }, // Rugby
  { lat: 52.4068, lon: -1.5197 }, // Coventry
  { lat: 52.4862, lon: -1.8904 }, // Birmingham
].map((p) => Object.freeze(p)));

/** Great-circle (haversine) distance in metres. */
export function distanceM(a: Waypoint, b: Waypoint): number {
  const dLat = (b.lat - a.lat) * RAD;
  const dLon = (b.lon - a.lon) * RAD;
  const h = Math.sin(dLat / 2) ** 2 + Math.cos(a.lat * RAD) * Math.cos(b.lat * RAD) * Math.sin(dLon / 2) ** 2;
  return 2 * EARTH_RADIUS_M * Math.asin(Math.min(1, Math.sqrt(h)));
}

/** Initial compass bearing from `from` to `to`, degrees in [0, 360), 0 = north, clockwise. */
export function bearingDeg(from: Waypoint, to: Waypoint): number {
  const phi1 = from.lat * RAD;
  const phi2 = to.lat * RAD;
  const dLon = (to.lon - from.lon) * RAD;
  const y = Math.sin(dLon) * Math.cos(phi2);
  const x = Math.cos(phi1) * Math.sin(phi2) - Math.sin(phi1) * Math.cos(phi2) * Math.cos(dLon);
  return normalizeDeg(Math.atan2(y, x) / RAD);
}

/** Any angle in degrees mapped into [0, 360). */
export function normalizeDeg(deg: number): number {
  const d = deg % 360;
  const n = d < 0 ? d + 360 : d;
  return n === 360 ? 0 : n; // (-1e-14) + 360 rounds to 360
}

const COMPASS: readonly CompassPoint[] = ['N', 'NE', 'E', 'SE', 'S', 'SW', 'W', 'NW'];

/** The nearest of the 8 compass points; each covers 45°, N being [337.5, 22.5). */
export function compassPoint(bearing: number): CompassPoint {
  return COMPASS[Math.floor(normalizeDeg(bearing + 22.5) / 45) % 8]!;
}

const DECIMAL = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

/** `text` is set when the point came from the string form, where numbers are still text. */
function coordinate(value: unknown, name: 'lat' | 'lon', where: string, text = false): number {
  let n: number;
  if (text && typeof value === 'string' && DECIMAL.test(value.trim())) n = Number(value.trim());
  else if (!text && typeof value === 'number') n = value;
  else throw new Error(`${where}: ${name} must be a number, got ${value === undefined ? 'nothing' : JSON.stringify(value)}`);
  if (!Number.isFinite(n)) throw new Error(`${where}: ${name} must be a finite number, got ${String(n)}`);
  const limit = name === 'lat' ? 90 : 180;
  if (n < -limit || n > limit) throw new Error(`${where}: ${name} ${n} is outside [-${limit}, ${limit}]`);
  return n;
}

/**
 * Parses a user route: an array of {lat, lon} or a string "lat,lon;lat,lon;…" (decimal degrees).
 * Throws an Error naming the offending point when the route has fewer than 2 points, a coordinate
 * that is not a finite number or is out of range, or the same place twice in a row.
 */
export function parseRoute(input: unknown): Waypoint[] {
  let points: Waypoint[];
  if (typeof input === 'string') {
    const parts = input.split(';').map((p) => p.trim()).filter((p) => p !== '');
    points = parts.map((part, i) => {
      const where = `route point ${i + 1} ${JSON.stringify(part)}`;
      const fields = part.split(',');
      if (fields.length !== 2) throw new Error(`${where}: expected "lat,lon"`);
      return { lat: coordinate(fields[0], 'lat', where, true), lon: coordinate(fields[1], 'lon', where, true) };
    });
  } else if (Array.isArray(input)) {
    points = input.map((raw: unknown, i) => {
      const where = `route point ${i + 1}`;
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new Error(`${where}: expected an object {lat, lon}`);
      const { lat, lon } = raw as { lat?: unknown; lon?: unknown };
      return { lat: coordinate(lat, 'lat', where), lon: coordinate(lon, 'lon', where) };
    });
  } else {
    throw new Error('a route must be an array of {lat, lon} points or a string "lat,lon;lat,lon;…"');
  }
  if (points.length < 2) {
    throw new Error(`a route needs at least 2 points (start and destination), got ${points.length}`);
  }
  for (let i = 1; i < points.length; i++) {
    const gap = distanceM(points[i - 1]!, points[i]!);
    if (gap < MIN_SEGMENT_M) {
      throw new Error(`route point ${i + 1} repeats point ${i} (${points[i]!.lat}, ${points[i]!.lon}): consecutive points must differ`);
    }
    if (gap > MAX_SEGMENT_M) {
      throw new Error(`route points ${i} and ${i + 1} are ${Math.round(gap / 1000)} km apart; add waypoints in between (at most ${MAX_SEGMENT_M / 1000} km per leg)`);
    }
  }
  return points;
}

interface Segment {
  startM: number;
  lengthM: number;
  /** Unit vectors of the endpoints and the angle between them, for interpolation. */
  a: [number, number, number];
  b: [number, number, number];
  sinAngle: number;
  angle: number;
}

function unitVector(p: Waypoint): [number, number, number] {
  const phi = p.lat * RAD;
  const lambda = p.lon * RAD;
  return [Math.cos(phi) * Math.cos(lambda), Math.cos(phi) * Math.sin(lambda), Math.sin(phi)];
}

/** A validated polyline with distances along it. */
export class Route {
  readonly waypoints: readonly Waypoint[];
  readonly lengthM: number;
  private readonly segments: Segment[];

  constructor(input: RouteInput = DEFAULT_ROUTE) {
    this.waypoints = parseRoute(input);
    this.segments = [];
    let startM = 0;
    for (let i = 1; i < this.waypoints.length; i++) {
      const from = this.waypoints[i - 1]!;
      const to = this.waypoints[i]!;
      const lengthM = distanceM(from, to);
      const angle = lengthM / EARTH_RADIUS_M;
      this.segments.push({ startM, lengthM, a: unitVector(from), b: unitVector(to), angle, sinAngle: Math.sin(angle) });
      startM += lengthM;
    }
    this.lengthM = startM;
  }

  /** The position `distance` metres from the start along the route, clamped to its ends. */
  pointAt(distance: number): Waypoint {
    if (distance <= 0) return { ...this.waypoints[0]! };
    if (distance >= this.lengthM) return { ...this.waypoints[this.waypoints.length - 1]! };
    const segment = this.segments[this.segmentIndex(distance)]!;
    const f = (distance - segment.startM) / segment.lengthM;
    // Spherical linear interpolation keeps the point on the great circle and the pace uniform.
    const wa = Math.sin((1 - f) * segment.angle) / segment.sinAngle;
    const wb = Math.sin(f * segment.angle) / segment.sinAngle;
    const x = wa * segment.a[0] + wb * segment.b[0];
    const y = wa * segment.a[1] + wb * segment.b[1];
    const z = wa * segment.a[2] + wb * segment.b[2];
    return { lat: Math.atan2(z, Math.hypot(x, y)) / RAD, lon: Math.atan2(y, x) / RAD };
  }

  private segmentIndex(distance: number): number {
    let lo = 0;
    let hi = this.segments.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.segments[mid]!.startM <= distance) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }
}
