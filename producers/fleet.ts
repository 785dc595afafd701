// The fleet simulation: pure and deterministic, no I/O and no clock. The same options give the
// same events with the same ids, so a journey interrupted mid-way is resumed by regenerating it
// and skipping what was already produced.
//
// Vehicles share one world per run: speed limits, congestion and weather are smooth fields of
// place and time drawn from the run seed, so two vehicles passing the same camera at the same
// time see the same congestion. What is a vehicle's own (its model, driving style, sensor noise,
// incidents) comes from a stream forked per vehicle, so vehicle 3 is the same vehicle whether the
// fleet has 5 vehicles or 500.
import type { EventOf, PayloadOf, SmartCityEvent, Source, VehicleEvent, WeatherEvent, EmergencyEvent, TrafficEvent } from '../schemas';
import { eventId, incidentId } from './ids';
import { Rng } from './rng';
import { Route, bearingDeg, compassPoint, distanceM, normalizeDeg, type RouteInput, type Waypoint } from './route';

export interface FleetOptions {
  /** Number of vehicles, 1 to 10 000. */
  vehicles: number;
  /** Run seed: every random choice and every event id derives from it. */
  seed: number;
  /** Departure of the first vehicle; the others leave within the following ten minutes. */
  start: Date;
  /** Waypoints every vehicle drives, first to last; the London → Birmingham route by default. */
  route?: RouteInput;
  /** Simulated seconds between two vehicle/GPS readings; 5 by default. */
  tickSeconds?: number;
  /** Simulated seconds between two weather readings of a vehicle; 60 by default. */
  weatherIntervalSeconds?: number;
}

export interface Camera {
  cameraId: string;
  location: Waypoint;
  /** Metres from the start of the route. */
  distanceM: number;
}

export const DEFAULT_TICK_SECONDS = 5;
export const DEFAULT_WEATHER_INTERVAL_SECONDS = 60;
const MAX_VEHICLES = 10_000;
/** Vehicles depart within this many seconds of the fleet's start: after it, all of them are on the road. */
export const DEPARTURE_SPREAD_S = 600;

// Speed limits of the UK roads on the default route: 30 mph in town, 40 mph on the radial roads,
// 70 mph on the motorway, 50 mph through roadworks.
const TOWN_KMH = 48;
const RADIAL_KMH = 64;
const MOTORWAY_KMH = 113;
const ROADWORKS_KMH = 80;
const ROADWORKS_SECTION_M = 5_000;
const ROADWORKS_SHARE = 0.1;

// Driving: bounded acceleration toward a target speed plus Ornstein–Uhlenbeck noise, so speed is
// continuous and wanders around the target instead of jumping from tick to tick.
const MAX_ACCEL = 1.2; // m/s²
const MAX_DECEL = 2; // m/s²
/** Gentle braking that brings the vehicle to a stop exactly at the destination. */
const APPROACH_DECEL = 0.6; // m/s²
const SPEED_RELAXATION_S = 20;
const SPEED_NOISE = 0.35; // m/s per √s
/** Below this the movement is too short to define a heading; the previous one is kept. */
const MIN_HEADING_MOVE_M = 0.5;
const ARRIVAL_TOLERANCE_M = 1;

const CAMERA_SPACING_M = 8_000;
const TRAFFIC_CELL_M = 6_000;
const TRAFFIC_CELL_MS = 20 * 60_000;

const INCIDENT_MEAN_INTERVAL_MS = 45 * 60_000;
const INCIDENT_RESOLVED_SHARE = 0.75;

const MINUTE_MS = 60_000;
const HOUR_MS = 3_600_000;
const DAY_MS = 86_400_000;

type VehicleType = EventOf<'gps'>['vehicleType'];
type FuelType = VehicleEvent['fuelType'];
type Condition = WeatherEvent['condition'];
type IncidentType = EmergencyEvent['incidentType'];
type Congestion = TrafficEvent['congestion'];

interface Model {
  make: string;
  model: string;
  fuels: readonly FuelType[];
  /** First model year sold in the UK. */
  since: number;
}

const FLEET_MIX: readonly (readonly [VehicleType, number])[] = [
  ['private', 60],
  ['taxi', 15],
  ['delivery', 15],
  ['bus', 10],
];

const MODELS: Record<VehicleType, readonly Model[]> = {
  private: [
    { make: 'Ford', model: 'Focus', fuels: ['petrol', 'diesel'], since: 1998 },
    { make: 'Vauxhall', model: 'Corsa', fuels: ['petrol', 'diesel'], since: 1993 },
    { make: 'Volkswagen', model: 'Golf', fuels: ['petrol', 'diesel', 'hybrid'], since: 1974 },
    { make: 'Toyota', model: 'Yaris', fuels: ['hybrid'], since: 2012 },
    { make: 'Nissan', model: 'Leaf', fuels: ['electric'], since: 2011 },
    { make: 'Tesla', model: 'Model 3', fuels: ['electric'], since: 2019 },
    { make: 'Kia', model: 'Niro', fuels: ['hybrid', 'electric'], since: 2016 },
    { make: 'BMW', model: '3 Series', fuels: ['petrol', 'diesel', 'hybrid'], since: 1975 },
  ],
  taxi: [
    { make: 'LEVC', model: 'TX', fuels: ['hybrid'], since: 2018 },
    { make: 'Toyota', model: 'Prius+', fuels: ['hybrid'], since: 2012 },
    { make: 'Skoda', model: 'Octavia', fuels: ['diesel', 'petrol'], since: 1996 },
  ],
  delivery: [
    { make: 'Ford', model: 'Transit', fuels: ['diesel'], since: 1965 },
    { make: 'Mercedes-Benz', model: 'Sprinter', fuels: ['diesel'], since: 1995 },
    { make: 'Vauxhall', model: 'Vivaro', fuels: ['diesel', 'electric'], since: 2001 },
    { make: 'Renault', model: 'Master', fuels: ['diesel'], since: 1980 },
  ],
  bus: [
    { make: 'Alexander Dennis', model: 'Enviro400', fuels: ['diesel', 'hybrid'], since: 2005 },
    { make: 'Plaxton', model: 'Panther', fuels: ['diesel'], since: 2008 },
    { make: 'Wrightbus', model: 'StreetDeck', fuels: ['diesel', 'hybrid'], since: 2014 },
  ],
};

/** Coaches and buses are limited to 100 km/h; the others to the motorway limit. */
const TOP_KMH: Record<VehicleType, number> = { private: MOTORWAY_KMH, taxi: MOTORWAY_KMH, delivery: MOTORWAY_KMH, bus: 100 };

// Traffic events are sightings of the vehicle's tag; the camera that saw it is in cameraId.
const DEVICE_PREFIX: Record<Source, string> = { vehicle: 'obd', gps: 'gps', traffic: 'tag', weather: 'wx', emergency: 'ecall' };

const INCIDENT_MIX: readonly (readonly [IncidentType, number])[] = [
  ['accident', 45],
  ['medical', 25],
  ['police', 20],
  ['fire', 10],
];

const INCIDENT_TEXT: Record<IncidentType, readonly string[]> = {
  accident: ['Two-vehicle collision blocking lane 1', 'Vehicle overturned on the verge', 'Debris on the carriageway after a shunt'],
  fire: ['Vehicle fire on the hard shoulder', 'Smoke from the engine bay of a lorry'],
  medical: ['Driver taken ill, vehicle stopped in lane 1', 'Passenger needs an ambulance'],
  police: ['Police stop on the hard shoulder', 'Wrong-way driver reported'],
};

/** Validated options plus what every journey of the run shares. */
interface Plan {
  vehicles: number;
  seed: number;
  /** Names the run in event ids: seed plus everything else that shapes the events. */
  runKey: string;
  startMs: number;
  tickMs: number;
  weatherMs: number;
  route: Route;
  cameras: Camera[];
  world: World;
}

/** The run's shared fields: lattices of smooth noise in space and time. */
interface World {
  roadworks: Rng;
  traffic: Rng;
  wet: Rng;
  warmth: Rng;
  wind: Rng;
  air: Rng;
}

interface VehicleProfile {
  vehicleId: string;
  vehicleType: VehicleType;
  make: string;
  model: string;
  year: number;
  fuelType: FuelType;
  topKmh: number;
  /** How much faster or slower than the limit this driver likes to go. */
  pace: number;
  departureMs: number;
  deviceIds: Record<Source, string>;
  gpsAccuracyM: number;
  thermometerBiasC: number;
}

function vehicleId(index: number): string {
  return `vehicle-${String(index + 1).padStart(3, '0')}`;
}

/** Vehicle ids of the fleet, in vehicle-index order: "vehicle-001", "vehicle-002", … */
export function vehicleIds(opts: Pick<FleetOptions, 'vehicles'>): string[] {
  checkVehicles(opts.vehicles);
  return Array.from({ length: opts.vehicles }, (_, i) => vehicleId(i));
}

function checkVehicles(vehicles: unknown): void {
  if (typeof vehicles !== 'number' || !Number.isInteger(vehicles) || vehicles < 1 || vehicles > MAX_VEHICLES) {
    throw new Error(`vehicles must be an integer from 1 to ${MAX_VEHICLES}, got ${String(vehicles)}`);
  }
}

function positiveSeconds(name: string, value: number | undefined, fallback: number): number {
  const seconds = value ?? fallback;
  if (typeof seconds !== 'number' || !Number.isFinite(seconds) || seconds < 0.1 || seconds > 3600) {
    throw new Error(`${name} must be a number of seconds from 0.1 to 3600, got ${String(seconds)}`);
  }
  return Math.round(seconds * 1000);
}

function resolvePlan(opts: FleetOptions): Plan {
  checkVehicles(opts.vehicles);
  if (typeof opts.seed !== 'number' || !Number.isSafeInteger(opts.seed)) {
    throw new Error(`seed must be an integer, got ${String(opts.seed)}`);
  }
  if (!(opts.start instanceof Date) || Number.isNaN(opts.start.getTime())) {
    throw new Error(`start must be a valid Date, got ${String(opts.start)}`);
  }
  const route = new Route(opts.route);
  const root = new Rng(opts.seed);
  const startMs = opts.start.getTime();
  const tickMs = positiveSeconds('tickSeconds', opts.tickSeconds, DEFAULT_TICK_SECONDS);
  const weatherMs = positiveSeconds('weatherIntervalSeconds', opts.weatherIntervalSeconds, DEFAULT_WEATHER_INTERVAL_SECONDS);
  // Two runs with the same seed but another start, route or tick are different data: their ids
  // must differ too, or deduplication downstream would drop the second run as a replay of the first.
  // The fleet size is left out on purpose: vehicle N is the same journey in a fleet of any size.
  const runKey = [opts.seed, startMs, tickMs, weatherMs, route.waypoints.map((w) => `${w.lat},${w.lon}`).join(';')].join('|');
  return {
    vehicles: opts.vehicles,
    seed: opts.seed,
    runKey,
    startMs,
    tickMs,
    weatherMs,
    route,
    cameras: placeCameras(route),
    world: {
      roadworks: root.fork('roadworks'),
      traffic: root.fork('traffic'),
      wet: root.fork('wet'),
      warmth: root.fork('warmth'),
      wind: root.fork('wind'),
      air: root.fork('air'),
    },
  };
}

/**
 * Roadside cameras along a route, in route order: one near the middle of each stretch of about
 * 8 km, so at least one and never at either end. Cameras are street furniture: they depend on
 * the route alone, not on the run seed, and keep their ids from run to run.
 */
export function placeCameras(route: Route): Camera[] {
  const rng = new Rng(`cameras:${JSON.stringify(route.waypoints)}`);
  const tag = rng.uint32().toString(16).padStart(8, '0').slice(0, 6);
  const count = Math.max(1, Math.round(route.lengthM / CAMERA_SPACING_M));
  const section = route.lengthM / count;
  return Array.from({ length: count }, (_, k) => {
    const distance = (k + 0.5 + rng.range(-0.2, 0.2)) * section;
    return { cameraId: `cam-${tag}-${String(k + 1).padStart(3, '0')}`, location: route.pointAt(distance), distanceM: distance };
  });
}

function vehicleProfile(plan: Plan, index: number): VehicleProfile {
  const rng = new Rng(plan.seed).fork(`vehicle:${index}`).fork('profile');
  const vehicleType = rng.weighted(FLEET_MIX);
  const model = rng.pick(MODELS[vehicleType]);
  const startYear = new Date(plan.startMs).getUTCFullYear();
  const oldest = Math.max(model.since, startYear - 12);
  const year = Math.min(2100, Math.max(1980, rng.int(oldest, Math.max(oldest, startYear))));
  const serial = (source: Source): string => `${DEVICE_PREFIX[source]}-${rng.uint32().toString(16).padStart(8, '0')}`;
  return {
    vehicleId: vehicleId(index),
    vehicleType,
    make: model.make,
    model: model.model,
    year,
    fuelType: rng.pick(model.fuels),
    topKmh: TOP_KMH[vehicleType],
    pace: clamp(rng.normal(1, 0.04), 0.9, 1.1),
    departureMs: plan.startMs + (index === 0 ? 0 : rng.int(0, DEPARTURE_SPREAD_S) * 1000),
    deviceIds: { vehicle: serial('vehicle'), gps: serial('gps'), traffic: serial('traffic'), weather: serial('weather'), emergency: serial('emergency') },
    gpsAccuracyM: rng.range(2.5, 5),
    thermometerBiasC: rng.normal(0, 0.3),
  };
}

function clamp(x: number, lo: number, hi: number): number {
  return x < lo ? lo : x > hi ? hi : x;
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}

function lerp(a: number, b: number, f: number): number {
  return a + (b - a) * f;
}

function smoothstep(x: number): number {
  const t = clamp(x, 0, 1);
  return t * t * (3 - 2 * t);
}

// Value noise: random values on an integer lattice blended with smoothstep, so the field and its
// slope are continuous and a reading differs little from the one a minute or a kilometre before.

function noise2(rng: Rng, x: number, y: number): number {
  const i = Math.floor(x);
  const j = Math.floor(y);
  const fx = smoothstep(x - i);
  const fy = smoothstep(y - j);
  return lerp(lerp(rng.unitAt(i, j), rng.unitAt(i + 1, j), fx), lerp(rng.unitAt(i, j + 1), rng.unitAt(i + 1, j + 1), fx), fy);
}

function noise3(rng: Rng, x: number, y: number, z: number): number {
  const i = Math.floor(x);
  const j = Math.floor(y);
  const k = Math.floor(z);
  const fx = smoothstep(x - i);
  const fy = smoothstep(y - j);
  const layer = (kk: number): number =>
    lerp(lerp(rng.unitAt(i, j, kk), rng.unitAt(i + 1, j, kk), fx), lerp(rng.unitAt(i, j + 1, kk), rng.unitAt(i + 1, j + 1, kk), fx), fy);
  return lerp(layer(k), layer(k + 1), smoothstep(z - k));
}

/** 0 on the open road, rising to 1 at either end of the route, where the towns are. */
function urbanness(route: Route, distance: number): number {
  return clamp(1 - Math.min(distance, route.lengthM - distance) / 10_000, 0, 1);
}

/** Speed limit at a distance along the route: town, radial road, motorway, roadworks. */
function speedLimitKmh(plan: Plan, distance: number): number {
  const fromEnd = Math.min(distance, plan.route.lengthM - distance);
  let limit: number;
  if (fromEnd < 3_000) limit = TOWN_KMH;
  else if (fromEnd < 4_000) limit = lerp(TOWN_KMH, RADIAL_KMH, (fromEnd - 3_000) / 1_000);
  else if (fromEnd < 8_000) limit = RADIAL_KMH;
  else if (fromEnd < 10_000) limit = lerp(RADIAL_KMH, MOTORWAY_KMH, (fromEnd - 8_000) / 2_000);
  else limit = MOTORWAY_KMH;
  const works = plan.world.roadworks.unitAt(Math.floor(distance / ROADWORKS_SECTION_M)) < ROADWORKS_SHARE;
  return works ? Math.min(limit, ROADWORKS_KMH) : limit;
}

/** Weekday rush hours around 08:00 and 17:30 (UTC stands in for UK time), 0 to about 1. */
function rushHour(tMs: number): number {
  const hour = (((tMs % DAY_MS) + DAY_MS) % DAY_MS) / HOUR_MS;
  const peaks = Math.exp(-(((hour - 8) / 1.2) ** 2)) + Math.exp(-(((hour - 17.5) / 1.2) ** 2));
  const day = new Date(tMs).getUTCDay();
  return day === 0 || day === 6 ? 0.3 * peaks : peaks;
}

/** Share of the free-flow speed traffic allows at a place and time: 1 free, down to 0.4. */
function trafficFactor(plan: Plan, distance: number, tMs: number): number {
  const level = noise2(plan.world.traffic, distance / TRAFFIC_CELL_M, tMs / TRAFFIC_CELL_MS) + 0.3 * rushHour(tMs) + 0.15 * urbanness(plan.route, distance) - 0.15;
  return 1 - 0.6 * smoothstep((level - 0.45) / 0.4);
}

function congestionOf(factor: number): Congestion {
  return factor > 0.85 ? 'free' : factor > 0.6 ? 'moderate' : 'heavy';
}

const CLOUDY_AT = 0.45;
const WET_AT = 0.65;
/** Keeps the condition from flickering when a field hovers around a threshold. */
const HYSTERESIS = 0.04;

/** A vehicle's weather sensors: their own noise, a thermometer bias, the last condition read. */
interface WeatherSensor {
  noise: Rng;
  biasC: number;
  previous: Condition | undefined;
}

function weatherAt(plan: Plan, at: Waypoint, distance: number, tMs: number, sensor: WeatherSensor): PayloadOf<'weather'> {
  const { world } = plan;
  const rng = sensor.noise;
  const yKm = at.lat * 110.57;
  const xKm = at.lon * 111.32 * Math.cos((at.lat * Math.PI) / 180);
  const urban = urbanness(plan.route, distance);

  const dayOfYear = (tMs - Date.UTC(new Date(tMs).getUTCFullYear(), 0, 1)) / DAY_MS;
  const hour = (((tMs % DAY_MS) + DAY_MS) % DAY_MS) / HOUR_MS;
  const afternoon = Math.cos((2 * Math.PI * (hour - 15)) / 24); // 1 at 15:00, -1 at 03:00
  const wet = noise3(world.wet, xKm / 50, yKm / 50, tMs / (2 * HOUR_MS));

  const seasonal = 11 - 6.5 * Math.cos((2 * Math.PI * (dayOfYear - 20)) / 365.25);
  const anomaly = (noise3(world.warmth, xKm / 80, yKm / 80, tMs / (3 * HOUR_MS)) - 0.5) * 5;
  const temperatureC =
    seasonal + 3.5 * afternoon * (1 - 0.5 * wet) - 0.6 * (at.lat - 52) + 1.2 * urban + anomaly - 3 * Math.max(0, wet - WET_AT) + sensor.biasC + rng.normal(0, 0.05);
  const windSpeedKmh = Math.max(0, 4 + 30 * noise3(world.wind, xKm / 60, yKm / 60, tMs / (2 * HOUR_MS)) + 10 * Math.max(0, wet - 0.5) + rng.normal(0, 1));
  const humidityPct = clamp(52 + 48 * wet + 7 * (1 - afternoon) - 0.7 * Math.max(0, temperatureC - 10) + rng.normal(0, 0.5), 15, 100);

  const previous = sensor.previous;
  const margin = previous === undefined ? 0 : HYSTERESIS;
  const wasWet = previous === 'rain' || previous === 'snow';
  let condition: Condition;
  if (wet >= WET_AT + (wasWet ? -margin : margin)) {
    condition = temperatureC < (previous === 'snow' ? 1.5 : 0.5) ? 'snow' : 'rain';
  } else if (previous === 'fog' ? humidityPct > 93 && windSpeedKmh < 15 : humidityPct > 96 && windSpeedKmh < 10) {
    condition = 'fog';
  } else {
    condition = wet >= CLOUDY_AT + (previous === undefined || previous === 'clear' ? margin : -margin) ? 'cloudy' : 'clear';
  }
  sensor.previous = condition;

  const intensity = clamp((wet - WET_AT) / (1 - WET_AT), 0, 1) ** 2;
  const precipitationMm = condition === 'rain' ? 0.3 + 9 * intensity : condition === 'snow' ? 0.2 + 4 * intensity : 0;
  const air = noise3(world.air, xKm / 30, yKm / 30, tMs / HOUR_MS);
  const aqi = 18 + 40 * urban + 22 * rushHour(tMs) + 30 * (air - 0.5) - 0.25 * windSpeedKmh - (precipitationMm > 0 ? 8 : 0) + rng.normal(0, 1.5);

  return {
    location: { ...at },
    temperatureC: round1(temperatureC),
    condition,
    precipitationMm: round1(precipitationMm),
    windSpeedKmh: round1(windSpeedKmh),
    humidityPct: round1(humidityPct),
    airQualityIndex: Math.round(clamp(aqi, 0, 500)),
  };
}

/**
 * The highest speed at the end of a tick from which the vehicle can still stop at the
 * destination braking at APPROACH_DECEL: v² ≤ 2a(remaining − step), step = (v0 + v)·dt/2.
 * It is 0 exactly when the vehicle reaches the destination within the tick.
 */
function approachCap(v0: number, remaining: number, dt: number): number {
  const a = APPROACH_DECEL;
  const c = 2 * a * remaining - a * dt * v0;
  if (c <= 0) return 0;
  return (-a * dt + Math.sqrt((a * dt) ** 2 + 4 * c)) / 2;
}

/** A heading rounded for the event; 359.96 must become 0, not 360. */
function headingOut(deg: number): number {
  return normalizeDeg(round1(deg));
}

function compactTime(tMs: number): string {
  return new Date(tMs).toISOString().replace(/[-:]/g, '');
}

/** An event that falls between two ticks, emitted in time order before the later tick. */
interface Between {
  atMs: number;
  emit: () => SmartCityEvent;
}

interface PendingResolution {
  atMs: number;
  id: string;
  type: IncidentType;
  location: Waypoint;
  text: string;
  reportedMs: number;
}

function* simulate(plan: Plan, index: number): Generator<SmartCityEvent> {
  const { route, tickMs } = plan;
  const profile = vehicleProfile(plan, index);
  const own = new Rng(plan.seed).fork(`vehicle:${index}`);
  const motion = own.fork('motion');
  const gpsNoise = own.fork('gps');
  const cameraNoise = own.fork('traffic');
  const sos = own.fork('emergency');
  const weatherSensor: WeatherSensor = { noise: own.fork('weather'), biasC: profile.thermometerBiasC, previous: undefined };
  const destination = route.waypoints[route.waypoints.length - 1]!;

  const seq: Record<Source, number> = { vehicle: 0, gps: 0, traffic: 0, weather: 0, emergency: 0 };
  const stamp = <S extends Source>(source: S, atMs: number, payload: PayloadOf<S>): EventOf<S> => {
    const n = seq[source]++;
    return {
      eventId: eventId(plan.runKey, profile.vehicleId, source, n),
      source,
      vehicleId: profile.vehicleId,
      deviceId: profile.deviceIds[source],
      seq: n,
      eventTime: new Date(atMs).toISOString(),
      schemaVersion: 1,
      ...payload,
    } as EventOf<S>;
  };

  const telemetry = (tMs: number, at: Waypoint, distance: number, speed: number, heading: number, journeyStatus: VehicleEvent['journeyStatus']) => {
    const speedKmh = round1(speed * 3.6);
    const headingDeg = headingOut(heading);
    const vehicle = stamp('vehicle', tMs, {
      location: { ...at },
      speedKmh,
      headingDeg,
      direction: compassPoint(headingDeg),
      make: profile.make,
      model: profile.model,
      year: profile.year,
      fuelType: profile.fuelType,
      journeyStatus,
    });
    // A fix is off by a few metres, more between buildings; the reported accuracy says how much.
    const accuracyM = profile.gpsAccuracyM * (1 + 1.5 * urbanness(route, distance)) * (1 + 0.25 * Math.abs(gpsNoise.normal()));
    const northM = gpsNoise.normal(0, accuracyM / 2);
    const eastM = gpsNoise.normal(0, accuracyM / 2);
    const gps = stamp('gps', tMs, {
      location: {
        lat: clamp(at.lat + northM / 111_132, -90, 90),
        lon: normalizeDeg(at.lon + 180 + eastM / (111_320 * Math.max(0.01, Math.cos((at.lat * Math.PI) / 180)))) - 180,
      },
      speedKmh: speed > 0 ? round1(Math.max(0, speedKmh + gpsNoise.normal(0, 0.2))) : 0,
      headingDeg,
      accuracyM: round1(accuracyM),
      vehicleType: profile.vehicleType,
    });
    return [vehicle, gps] as const;
  };

  let tMs = profile.departureMs;
  let distance = 0;
  let speed = 0;
  let position = route.pointAt(0);
  let heading = bearingDeg(route.waypoints[0]!, route.waypoints[1]!);
  let nextWeatherMs = tMs;
  let nextIncidentMs = tMs + Math.max(1, Math.round(sos.exponential(INCIDENT_MEAN_INTERVAL_MS)));
  let incidents = 0;
  let nextCamera = 0;
  const resolutions: PendingResolution[] = [];

  const weatherIfDue = function* (): Generator<SmartCityEvent> {
    if (tMs < nextWeatherMs) return;
    yield stamp('weather', tMs, weatherAt(plan, position, distance, tMs, weatherSensor));
    // Scheduled from the plan, not from the tick, so readings do not drift when ticks do not
    // divide the interval; never more than one per tick.
    while (nextWeatherMs <= tMs) nextWeatherMs += plan.weatherMs;
  };

  yield* telemetry(tMs, position, distance, speed, heading, 'departed');
  yield* weatherIfDue();

  for (;;) {
    const prevMs = tMs;
    const prevDistance = distance;
    const prevSpeed = speed;
    const prevPosition = position;
    const dt = tickMs / 1000;
    tMs += tickMs;

    const remaining = route.lengthM - distance;
    const limit = Math.min(speedLimitKmh(plan, distance) * profile.pace, profile.topKmh) / 3.6;
    const target = limit * trafficFactor(plan, distance, prevMs);
    const pull = (target - speed) * (1 - Math.exp(-dt / SPEED_RELAXATION_S)) + motion.normal(0, SPEED_NOISE * Math.sqrt(dt));
    speed = clamp(speed + clamp(pull, -MAX_DECEL * dt, MAX_ACCEL * dt), 0, approachCap(prevSpeed, remaining, dt));
    const step = ((prevSpeed + speed) / 2) * dt;
    const arrived = step >= remaining - ARRIVAL_TOLERANCE_M;
    if (arrived) {
      distance = route.lengthM;
      speed = 0;
      position = { ...destination };
    } else {
      distance += step;
      position = route.pointAt(distance);
    }
    if (distanceM(prevPosition, position) >= MIN_HEADING_MOVE_M) heading = bearingDeg(prevPosition, position);

    // What happened between the previous tick and this one, at its own time and place.
    const moved = distance - prevDistance;
    const between: Between[] = [];
    const distanceAt = (atMs: number): number => prevDistance + (moved * (atMs - prevMs)) / tickMs;

    while (nextCamera < plan.cameras.length && plan.cameras[nextCamera]!.distanceM <= distance) {
      const camera = plan.cameras[nextCamera++]!;
      const f = (camera.distanceM - prevDistance) / moved;
      const atMs = Math.round(prevMs + f * tickMs);
      const observed = lerp(prevSpeed, speed, f) * 3.6 * (1 + cameraNoise.normal(0, 0.01));
      between.push({
        atMs,
        emit: () =>
          stamp('traffic', atMs, {
            cameraId: camera.cameraId,
            location: { ...camera.location },
            observedSpeedKmh: round1(clamp(observed, 0, 300)),
            congestion: congestionOf(trafficFactor(plan, camera.distanceM, atMs)),
            snapshotRef: `snapshots/${camera.cameraId}/${compactTime(atMs)}-${profile.vehicleId}.jpg`,
          }),
      });
    }

    while (nextIncidentMs <= tMs) {
      const atMs = nextIncidentMs;
      const id = incidentId(plan.runKey, profile.vehicleId, incidents++);
      const type = sos.weighted(INCIDENT_MIX);
      const at = distanceAt(atMs);
      const location = route.pointAt(at);
      const text = `${sos.pick(INCIDENT_TEXT[type])}, ${(at / 1000).toFixed(1)} km along the route`;
      between.push({
        atMs,
        emit: () => stamp('emergency', atMs, { incidentId: id, incidentType: type, location: { ...location }, status: 'active', description: text }),
      });
      if (sos.chance(INCIDENT_RESOLVED_SHARE)) {
        const resolution = { atMs: atMs + Math.round(sos.range(8, 45) * MINUTE_MS), id, type, location, text, reportedMs: atMs };
        resolutions.push(resolution);
        resolutions.sort((a, b) => a.atMs - b.atMs);
      }
      nextIncidentMs = atMs + Math.max(1, Math.round(sos.exponential(INCIDENT_MEAN_INTERVAL_MS)));
    }

    while (resolutions.length > 0 && resolutions[0]!.atMs <= tMs) {
      const r = resolutions.shift()!;
      const minutes = Math.round((r.atMs - r.reportedMs) / MINUTE_MS);
      between.push({
        atMs: r.atMs,
        emit: () =>
          stamp('emergency', r.atMs, {
            incidentId: r.id,
            incidentType: r.type,
            location: { ...r.location },
            status: 'resolved',
            description: `Cleared after ${minutes} min: ${r.text}`,
          }),
      });
    }

    // Array.prototype.sort is stable: equal times keep the order above.
    between.sort((a, b) => a.atMs - b.atMs);
    for (const event of between) yield event.emit();

    yield* telemetry(tMs, position, distance, speed, heading, arrived ? 'arrived' : 'en_route');
    yield* weatherIfDue();
    if (arrived) return;
  }
}

/**
 * One vehicle's whole journey, from "departed" at the start of the route to "arrived" exactly at
 * its end, in eventTime order. Options are checked before the first event.
 */
export function journeyEvents(opts: FleetOptions, vehicleIndex: number): Generator<SmartCityEvent> {
  const plan = resolvePlan(opts);
  if (!Number.isInteger(vehicleIndex) || vehicleIndex < 0 || vehicleIndex >= plan.vehicles) {
    throw new Error(`vehicleIndex must be an integer from 0 to ${plan.vehicles - 1}, got ${String(vehicleIndex)}`);
  }
  return simulate(plan, vehicleIndex);
}

interface Head {
  atMs: number;
  index: number;
  event: SmartCityEvent;
  rest: Generator<SmartCityEvent>;
}

function before(a: Head, b: Head): boolean {
  return a.atMs < b.atMs || (a.atMs === b.atMs && a.index < b.index);
}

/**
 * Every vehicle's journey merged into one stream by eventTime; ties go to the lower vehicle
 * index, and each vehicle's own order is kept. Options are checked before the first event.
 */
export function fleetEvents(opts: FleetOptions): Generator<SmartCityEvent> {
  return sliceEvents(opts, 0, opts.vehicles);
}

/**
 * The journeys of vehicles `first` … `first + count - 1` merged as fleetEvents merges the whole
 * fleet: a slice's events are exactly the fleet's events of those vehicles, in the same order,
 * with the same ids. A slice of one vehicle is its journey.
 */
export function sliceEvents(opts: FleetOptions, first: number, count: number): Generator<SmartCityEvent> {
  const plan = resolvePlan(opts);
  if (!Number.isInteger(first) || !Number.isInteger(count) || first < 0 || count < 1 || first + count > plan.vehicles) {
    throw new Error(`a slice must be 1 to ${plan.vehicles} consecutive vehicles of the fleet, got ${String(count)} from index ${String(first)}`);
  }
  return merge(Array.from({ length: count }, (_, i) => simulate(plan, first + i)));
}

function* merge(journeys: Generator<SmartCityEvent>[]): Generator<SmartCityEvent> {
  // A binary min-heap of each journey's next event: a linear scan per event would make large
  // fleets quadratic.
  const heap: Head[] = [];
  const push = (head: Head): void => {
    let i = heap.push(head) - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(heap[i]!, heap[parent]!)) break;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
  };
  const popTop = (): void => {
    const last = heap.pop()!;
    if (heap.length === 0) return;
    heap[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let min = i;
      if (l < heap.length && before(heap[l]!, heap[min]!)) min = l;
      if (r < heap.length && before(heap[r]!, heap[min]!)) min = r;
      if (min === i) return;
      [heap[i], heap[min]] = [heap[min]!, heap[i]!];
      i = min;
    }
  };
  const advance = (rest: Generator<SmartCityEvent>, index: number): void => {
    const next = rest.next();
    if (!next.done) push({ atMs: Date.parse(next.value.eventTime), index, event: next.value, rest });
  };

  journeys.forEach((journey, index) => advance(journey, index));
  while (heap.length > 0) {
    const top = heap[0]!;
    popTop();
    yield top.event;
    advance(top.rest, top.index);
  }
}
