// SVG drawn on the server, so the HTML report needs no script, library or map tiles: a map with the
// routes projected from lat/lon, time-series line charts and a bar chart of windows.
import type { Camera, Incident, Journey, RoutePoint } from './series';

export const PALETTE = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22', '#7f7f7f'];

export function escapeXml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
}

const fmt = (n: number) => (Math.round(n * 10) / 10).toString();
const clock = (ms: number) => new Date(ms).toISOString().slice(11, 16);

/** One colour per vehicle, in order of first appearance. */
export function vehicleColours(vehicleIds: string[]): Map<string, string> {
  const colours = new Map<string, string>();
  for (const id of vehicleIds) if (!colours.has(id)) colours.set(id, PALETTE[colours.size % PALETTE.length]!);
  return colours;
}

/** A step of 1, 2 or 5 × 10^k giving about `count` ticks over `range`. */
export function niceStep(range: number, count = 5): number {
  if (!(range > 0)) return 1;
  const raw = range / count;
  const power = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * power).find((s) => s >= raw) ?? 10 * power;
}

const TIME_STEPS_MIN = [1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440];

function timeStep(rangeMs: number): number {
  const minutes = rangeMs / 60_000 / 6;
  return (TIME_STEPS_MIN.find((m) => m >= minutes) ?? 1440) * 60_000;
}

// ---- map ------------------------------------------------------------------------------------

export interface MapInput {
  routes: Journey<RoutePoint>[];
  incidents: Incident[];
  cameras: Camera[];
  colours: Map<string, string>;
}

/**
 * Equirectangular projection around the data's mean latitude (x scaled by cos φ): at the scale of
 * a region the distortion is negligible and north stays up.
 */
export function projection(points: { lat: number; lon: number }[], width: number, maxHeight: number, pad = 24) {
  const lats = points.map((p) => p.lat);
  const lons = points.map((p) => p.lon);
  const [minLat, maxLat, minLon, maxLon] = [Math.min(...lats), Math.max(...lats), Math.min(...lons), Math.max(...lons)];
  const k = Math.cos((((minLat + maxLat) / 2) * Math.PI) / 180);
  const spanX = Math.max((maxLon - minLon) * k, 1e-4);
  const spanY = Math.max(maxLat - minLat, 1e-4);
  const scale = Math.min((width - 2 * pad) / spanX, (maxHeight - 2 * pad) / spanY);
  const height = Math.round(spanY * scale + 2 * pad);
  const offsetX = (width - spanX * scale) / 2;
  return {
    width,
    height,
    bounds: { minLat, maxLat, minLon, maxLon },
    /** Metres per SVG unit, for the scale bar (1° of latitude ≈ 111.2 km). */
    metresPerUnit: 111_195 / scale,
    x: (lon: number) => offsetX + (lon - minLon) * k * scale,
    y: (lat: number) => pad + (maxLat - lat) * scale,
  };
}

export function mapSvg({ routes, incidents, cameras, colours }: MapInput): string {
  const all = [...routes.flatMap((r) => r.points), ...incidents, ...cameras];
  if (all.length === 0) return emptyChart('map', 'no vehicle events in the lake yet');
  const p = projection(all, 760, 560);
  const parts: string[] = [];
  // Graticule every niceStep degrees, labelled at the edges.
  const latStep = niceStep(p.bounds.maxLat - p.bounds.minLat, 4);
  const lonStep = niceStep(p.bounds.maxLon - p.bounds.minLon, 4);
  for (let lat = Math.ceil(p.bounds.minLat / latStep) * latStep; lat <= p.bounds.maxLat; lat += latStep) {
    parts.push(`<line class="grid" x1="0" x2="${p.width}" y1="${fmt(p.y(lat))}" y2="${fmt(p.y(lat))}"/><text class="tick" x="4" y="${fmt(p.y(lat) - 3)}">${lat.toFixed(2)}°</text>`);
  }
  for (let lon = Math.ceil(p.bounds.minLon / lonStep) * lonStep; lon <= p.bounds.maxLon; lon += lonStep) {
    parts.push(`<line class="grid" y1="0" y2="${p.height}" x1="${fmt(p.x(lon))}" x2="${fmt(p.x(lon))}"/><text class="tick" y="${p.height - 4}" x="${fmt(p.x(lon) + 3)}">${lon.toFixed(2)}°</text>`);
  }
  for (const journey of routes) {
    const colour = colours.get(journey.vehicleId) ?? PALETTE[0]!;
    const first = journey.points[0]!;
    const last = journey.points[journey.points.length - 1]!;
    const d = journey.points.map((pt, i) => `${i ? 'L' : 'M'}${fmt(p.x(pt.lon))},${fmt(p.y(pt.lat))}`).join('');
    const title = escapeXml(`${journey.vehicleId}: ${new Date(first.t).toISOString()} → ${new Date(last.t).toISOString()}`);
    parts.push(
      `<g data-vehicle="${escapeXml(journey.vehicleId)}"><path class="route" d="${d}" stroke="${colour}"><title>${title}</title></path>` +
        `<circle class="start" cx="${fmt(p.x(first.lon))}" cy="${fmt(p.y(first.lat))}" r="4" stroke="${colour}"><title>${title} (start)</title></circle>` +
        `<circle class="end" cx="${fmt(p.x(last.lon))}" cy="${fmt(p.y(last.lat))}" r="4" fill="${colour}"><title>${title} (latest)</title></circle></g>`,
    );
  }
  for (const c of cameras) {
    const title = escapeXml(`camera ${c.cameraId}: ${c.sightings} sightings, average ${fmt(c.avgSpeedKmh)} km/h`);
    parts.push(`<rect class="camera" x="${fmt(p.x(c.lon) - 3)}" y="${fmt(p.y(c.lat) - 3)}" width="6" height="6"><title>${title}</title></rect>`);
  }
  for (const i of incidents) {
    const title = escapeXml(`${i.type} (${i.status}) reported by ${i.vehicleId} at ${new Date(i.t).toISOString()}`);
    parts.push(`<circle class="incident ${i.status === 'resolved' ? 'resolved' : 'active'}" cx="${fmt(p.x(i.lon))}" cy="${fmt(p.y(i.lat))}" r="6"><title>${title}</title></circle>`);
  }
  // The longest 1, 2 or 5 × 10^k km that fits in a quarter of the map.
  const quarterKm = (p.metresPerUnit * p.width) / 1000 / 4;
  const barKm = [5, 2, 1].map((m) => m * 10 ** Math.floor(Math.log10(quarterKm))).find((km) => km <= quarterKm)!;
  const barUnits = (barKm * 1000) / p.metresPerUnit;
  parts.push(
    `<g class="scale" transform="translate(${fmt(p.width - barUnits - 16)},${p.height - 16})"><line x1="0" x2="${fmt(barUnits)}" y1="0" y2="0"/><text x="0" y="-4">${barKm} km</text></g>`,
  );
  return `<svg id="map" class="chart" viewBox="0 0 ${p.width} ${p.height}" width="${p.width}" height="${p.height}" role="img" aria-label="map of the vehicles' routes">${parts.join('')}</svg>`;
}

// ---- charts ---------------------------------------------------------------------------------

export interface Line {
  key: string;
  colour: string;
  title: string;
  points: [number, number][];
}

export function emptyChart(id: string, message: string): string {
  return `<svg id="${id}" class="chart empty" viewBox="0 0 760 60" width="760" height="60"><text x="10" y="35">${escapeXml(message)}</text></svg>`;
}

/** Lines over time: x is epoch ms, y any value; one path per line. */
export function lineChart(id: string, unit: string, lines: Line[], size = { width: 760, height: 220 }): string {
  const points = lines.flatMap((l) => l.points);
  if (points.length === 0) return emptyChart(id, 'no data yet');
  const m = { left: 48, right: 12, top: 12, bottom: 24 };
  const xs = points.map(([x]) => x);
  const ys = points.map(([, y]) => y);
  const [x0, x1] = [Math.min(...xs), Math.max(...xs, Math.min(...xs) + 60_000)];
  const yStep = niceStep(Math.max(...ys) - Math.min(...ys, 0) || 1);
  const y0 = Math.floor(Math.min(...ys, 0) / yStep) * yStep;
  const y1 = Math.max(Math.ceil(Math.max(...ys) / yStep) * yStep, y0 + yStep);
  const sx = (x: number) => m.left + ((x - x0) / (x1 - x0)) * (size.width - m.left - m.right);
  const sy = (y: number) => size.height - m.bottom - ((y - y0) / (y1 - y0)) * (size.height - m.top - m.bottom);
  const parts: string[] = [];
  for (let y = y0; y <= y1 + 1e-9; y += yStep) {
    parts.push(`<line class="grid" x1="${m.left}" x2="${size.width - m.right}" y1="${fmt(sy(y))}" y2="${fmt(sy(y))}"/><text class="tick" x="${m.left - 4}" y="${fmt(sy(y) + 4)}" text-anchor="end">${fmt(y)}</text>`);
  }
  const tStep = timeStep(x1 - x0);
  for (let t = Math.ceil(x0 / tStep) * tStep; t <= x1; t += tStep) {
    parts.push(`<text class="tick" x="${fmt(sx(t))}" y="${size.height - 6}" text-anchor="middle">${clock(t)}</text>`);
  }
  parts.push(`<text class="unit" x="${m.left + 4}" y="${m.top + 10}">${escapeXml(unit)}</text>`);
  for (const line of lines) {
    if (line.points.length === 0) continue;
    const d = line.points.map(([x, y], i) => `${i ? 'L' : 'M'}${fmt(sx(x))},${fmt(sy(y))}`).join('');
    parts.push(`<path class="series" data-vehicle="${escapeXml(line.key)}" d="${d}" stroke="${line.colour}"><title>${escapeXml(line.title)}</title></path>`);
  }
  return `<svg id="${id}" class="chart" viewBox="0 0 ${size.width} ${size.height}" width="${size.width}" height="${size.height}">${parts.join('')}</svg>`;
}

export interface Bar {
  label: string;
  value: number;
  status: string;
  title: string;
}

/** One bar per window, height = rows, colour = status (CSS classes status-<name>). */
export function barChart(id: string, bars: Bar[], size = { width: 760, height: 160 }): string {
  if (bars.length === 0) return emptyChart(id, 'no window has run yet');
  const m = { left: 48, right: 12, top: 12, bottom: 24 };
  const max = Math.max(...bars.map((b) => b.value), 1);
  const step = niceStep(max);
  const top = Math.ceil(max / step) * step;
  const slot = Math.min((size.width - m.left - m.right) / bars.length, 48);
  const sy = (v: number) => size.height - m.bottom - (v / top) * (size.height - m.top - m.bottom);
  const parts: string[] = [];
  for (let v = 0; v <= top; v += step) {
    parts.push(`<line class="grid" x1="${m.left}" x2="${size.width - m.right}" y1="${fmt(sy(v))}" y2="${fmt(sy(v))}"/><text class="tick" x="${m.left - 4}" y="${fmt(sy(v) + 4)}" text-anchor="end">${v}</text>`);
  }
  const labelEvery = Math.ceil(bars.length / 8);
  bars.forEach((b, i) => {
    const x = m.left + i * slot + slot * 0.15;
    // An empty window still gets a sliver, so its status colour shows.
    const h = Math.max(sy(0) - sy(b.value), 2);
    parts.push(`<rect class="bar status-${escapeXml(b.status)}" x="${fmt(x)}" y="${fmt(sy(0) - h)}" width="${fmt(slot * 0.7)}" height="${fmt(h)}"><title>${escapeXml(b.title)}</title></rect>`);
    if (i % labelEvery === 0) parts.push(`<text class="tick" x="${fmt(x + slot * 0.35)}" y="${size.height - 6}" text-anchor="middle">${escapeXml(b.label)}</text>`);
  });
  return `<svg id="${id}" class="chart" viewBox="0 0 ${size.width} ${size.height}" width="${size.width}" height="${size.height}">${parts.join('')}</svg>`;
}
