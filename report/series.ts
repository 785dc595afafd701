// What the HTML report draws, read from the raw layer (everything the streaming job landed, loaded
// or not): each vehicle's route and speed, the weather it met, incidents and the cameras that saw
// it. Only the latest hours of event time are read, and each vehicle's points are thinned in SQL,
// so the page stays small however much the lake holds.
import type { DuckDBConnection } from '@duckdb/node-api';
import type { Config } from '../config';
import { fileList, listParquet, queryRows, scanParquet, toNumber, toText, withDatabase, type Row } from '../activities/duckdb';
import type { Source } from '../schemas';
import { layerRoot, readLake } from './lake';

/** Event time the charts cover, back from the latest vehicle event: the current fleet's journeys. */
export const SERIES_SPAN_MS = 6 * 3_600_000;
/** Points kept per vehicle and series; a journey of two hours at one tick per 5 s has 1440. */
const MAX_POINTS_PER_VEHICLE = 600;
const MAX_INCIDENTS = 300;
const MAX_CAMERAS = 500;
/** A longer silence between two readings of a device starts a new journey. */
const JOURNEY_GAP_MS = 10 * 60_000;

export interface RoutePoint {
  t: number;
  lat: number;
  lon: number;
  speedKmh: number;
}

export interface WeatherPoint {
  t: number;
  temperatureC: number;
  precipitationMm: number;
}

export interface Journey<P> {
  vehicleId: string;
  points: P[];
}

export interface Incident {
  t: number;
  lat: number;
  lon: number;
  type: string;
  status: string;
  vehicleId: string;
}

export interface Camera {
  cameraId: string;
  lat: number;
  lon: number;
  sightings: number;
  avgSpeedKmh: number;
}

export interface Series {
  /** Event-time range of the vehicle events shown, epoch ms; undefined when the lake has none. */
  from?: number;
  to?: number;
  routes: Journey<RoutePoint>[];
  weather: Journey<WeatherPoint>[];
  incidents: Incident[];
  cameras: Camera[];
}

const eventTime = 'epoch_ms(CAST(event_time AS TIMESTAMPTZ))';

/**
 * Runs `rest` after `WITH e AS (…)`, e being the raw table's events from `fromMs` on, each once;
 * `rest` is a SELECT or further CTEs and a SELECT. No rows when the table has no files yet.
 */
async function rawRows(conn: DuckDBConnection, config: Config, source: Source, fromMs: number, rest: string): Promise<Row[]> {
  return readLake(async () => {
    const files = await listParquet(layerRoot(config, 'raw', source));
    if (files.length === 0) return [];
    // A record re-sent after a producer retry can land twice; the report shows each event once.
    return queryRows(conn, `WITH e AS (SELECT DISTINCT ON (event_id) *, ${eventTime} AS t FROM ${scanParquet('$files')} WHERE ${eventTime} >= $from) ${rest}`, {
      files: fileList(files),
      from: fromMs,
    });
  });
}

/**
 * Each device's readings, every k-th, k chosen so at most MAX_POINTS_PER_VEHICLE remain (the last
 * one kept). Device ids come from the run's seed, so two runs of one vehicle id, even overlapping
 * in event time, stay apart.
 */
function thinned(columns: string): string {
  return `, n AS (SELECT vehicle_id, device_id, t, ${columns}, row_number() OVER (PARTITION BY vehicle_id, device_id ORDER BY t) AS i,
                      count(*) OVER (PARTITION BY vehicle_id, device_id) AS c FROM e)
          SELECT * FROM n WHERE (i - 1) % CAST(ceil(c / ${MAX_POINTS_PER_VEHICLE}) AS BIGINT) = 0 OR i = c ORDER BY vehicle_id, device_id, t`;
}

/** Splits each device's time-ordered points where it changes or was silent for longer than JOURNEY_GAP_MS. */
export function journeys<P extends { t: number }>(rows: { vehicleId: string; deviceId: string; point: P }[]): Journey<P>[] {
  const out: Journey<P>[] = [];
  let current: Journey<P> | undefined;
  let device: string | undefined;
  for (const { vehicleId, deviceId, point } of rows) {
    const last = current?.points[current.points.length - 1];
    if (!current || device !== deviceId || current.vehicleId !== vehicleId || !last || point.t - last.t > JOURNEY_GAP_MS) {
      current = { vehicleId, points: [] };
      device = deviceId;
      out.push(current);
    }
    current.points.push(point);
  }
  return out;
}

const num = (row: Row, key: string) => toNumber(row[key]);

export async function readSeries(config: Config): Promise<Series> {
  return withDatabase(undefined, async (conn) => {
    const [latest] = await rawRows(conn, config, 'vehicle', 0, 'SELECT max(t) AS t FROM e');
    if (latest?.t === null || latest?.t === undefined) return { routes: [], weather: [], incidents: [], cameras: [] };
    const to = toNumber(latest.t);
    const from = to - SERIES_SPAN_MS;
    const vehicles = await rawRows(conn, config, 'vehicle', from, thinned('lat, lon, speed_kmh'));
    const weather = await rawRows(conn, config, 'weather', from, thinned('temperature_c, precipitation_mm'));
    const incidents = await rawRows(
      conn,
      config,
      'emergency',
      from,
      `SELECT t, lat, lon, incident_type, status, vehicle_id FROM e ORDER BY t DESC LIMIT ${MAX_INCIDENTS}`,
    );
    const cameras = await rawRows(
      conn,
      config,
      'traffic',
      from,
      `SELECT camera_id, avg(lat) AS lat, avg(lon) AS lon, count(*) AS sightings, avg(observed_speed_kmh) AS speed
       FROM e GROUP BY camera_id ORDER BY camera_id LIMIT ${MAX_CAMERAS}`,
    );
    return {
      from: vehicles.reduce((min, r) => Math.min(min, num(r, 't')), to),
      to,
      routes: journeys(
        vehicles.map((r) => ({ vehicleId: toText(r.vehicle_id), deviceId: toText(r.device_id), point: { t: num(r, 't'), lat: num(r, 'lat'), lon: num(r, 'lon'), speedKmh: num(r, 'speed_kmh') } })),
      ),
      weather: journeys(
        weather.map((r) => ({
          vehicleId: toText(r.vehicle_id),
          deviceId: toText(r.device_id),
          point: { t: num(r, 't'), temperatureC: num(r, 'temperature_c'), precipitationMm: num(r, 'precipitation_mm') },
        })),
      ),
      incidents: incidents.map((r) => ({
        t: num(r, 't'),
        lat: num(r, 'lat'),
        lon: num(r, 'lon'),
        type: toText(r.incident_type),
        status: toText(r.status),
        vehicleId: toText(r.vehicle_id),
      })),
      cameras: cameras.map((r) => ({ cameraId: toText(r.camera_id), lat: num(r, 'lat'), lon: num(r, 'lon'), sightings: num(r, 'sightings'), avgSpeedKmh: num(r, 'speed') })),
    };
  });
}
