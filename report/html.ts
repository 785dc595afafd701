// The report as one HTML file that opens offline: styles, SVG and a few lines of script inline,
// nothing fetched. Every text that comes from data is escaped.
import { SOURCES } from '../schemas';
import { barChart, escapeXml, lineChart, mapSvg, vehicleColours, type Line } from './charts';
import type { PipelineReport } from './model';
import type { Journey } from './series';
import { seconds, shortTime } from './terminal';

const STYLE = `
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 800px; color: #222; }
h1 { font-size: 20px; margin-bottom: 4px; } h2 { font-size: 16px; margin-top: 28px; }
.meta, .note { color: #666; } table { border-collapse: collapse; margin: 8px 0; }
td, th { padding: 3px 10px; border-bottom: 1px solid #e4e4e4; text-align: right; } td:first-child, th:first-child { text-align: left; }
.chart { display: block; max-width: 100%; height: auto; background: #fafafa; border: 1px solid #e4e4e4; margin: 8px 0; }
.grid { stroke: #e6e6e6; stroke-width: 1; } .tick, .unit { font-size: 11px; fill: #777; }
.route, .series { fill: none; stroke-width: 2.2; stroke-linejoin: round; } .start { fill: #fff; stroke-width: 2; }
.camera { fill: #555; } .incident { fill: #d62728; fill-opacity: .75; stroke: #fff; } .incident.resolved { fill: #f0a; fill-opacity: .5; }
.scale line { stroke: #333; stroke-width: 2; } .scale text { font-size: 11px; }
.bar.status-loaded { fill: #2ca02c; } .bar.status-running { fill: #ffbf00; } .bar.status-failed { fill: #d62728; } .bar { fill: #999; }
.legend span { display: inline-block; margin-right: 14px; cursor: default; } .legend i { display: inline-block; width: 12px; height: 12px; margin-right: 4px; vertical-align: -1px; }
.dim [data-vehicle]:not(.hi) { opacity: .15; } .status-failed { color: #d62728; } .status-loaded { color: #2ca02c; }
`;

// Hovering a vehicle in the legend fades the others on the map and charts.
const SCRIPT = `
document.querySelectorAll('.legend [data-key]').forEach((item) => {
  const key = item.getAttribute('data-key');
  item.addEventListener('mouseenter', () => {
    document.body.classList.add('dim');
    document.querySelectorAll('[data-vehicle]').forEach((el) => el.classList.toggle('hi', el.getAttribute('data-vehicle') === key));
  });
  item.addEventListener('mouseleave', () => document.body.classList.remove('dim'));
});
`;

function legend(colours: Map<string, string>): string {
  const items = [...colours].map(([id, colour]) => `<span data-key="${escapeXml(id)}"><i style="background:${colour}"></i>${escapeXml(id)}</span>`);
  return `<p class="legend">${items.join('')}<span><i style="background:#555"></i>camera</span><span><i style="background:#d62728;border-radius:6px"></i>incident</span></p>`;
}

function lines<P extends { t: number }>(journeys: Journey<P>[], colours: Map<string, string>, value: (p: P) => number, what: string): Line[] {
  return journeys.map((j) => ({
    key: j.vehicleId,
    colour: colours.get(j.vehicleId) ?? '#999',
    title: `${j.vehicleId} ${what}`,
    points: j.points.map((p) => [p.t, value(p)]),
  }));
}

function rowsTable(report: PipelineReport): string {
  const layers = ['raw', 'quarantine', 'curated', 'warehouse'] as const;
  const body = SOURCES.map((s) => `<tr><td>${s}</td>${layers.map((l) => `<td>${report.sources[s][l]}</td>`).join('')}</tr>`).join('');
  return `<table id="rows"><tr><th>source</th>${layers.map((l) => `<th>${l}</th>`).join('')}</tr>${body}</table>`;
}

function windowsTable(report: PipelineReport): string {
  const rows = [...report.windows].reverse().map((w) => {
    const rows = w.rows ? Object.values(w.rows).reduce((a, b) => a + b, 0) : '';
    const checks = w.checks ? `${w.checks.passed}/${w.checks.passed + w.checks.failed.length}` : '';
    const stages = w.timings ? Object.entries(w.timings).map(([s, ms]) => `${s} ${seconds(ms)}`).join(' · ') : '';
    const run = w.latestRun ? `<a href="${escapeXml(w.latestRun.url)}">run</a>` : '';
    const why = [...(w.checks?.failed ?? []), ...(w.error ? [w.error] : [])].map((t) => `<div class="status-failed">${escapeXml(t)}</div>`).join('');
    return `<tr><td>${escapeXml(shortTime(w.from))}</td><td class="status-${escapeXml(w.status)}">${escapeXml(w.status)}</td><td>${rows}</td><td>${checks}</td><td style="text-align:left">${escapeXml(stages)}${why}</td><td>${run}</td></tr>`;
  });
  return `<table id="windows"><tr><th>window (UTC)</th><th>status</th><th>rows</th><th>checks</th><th style="text-align:left">stages</th><th></th></tr>${rows.join('')}</table>`;
}

function runLinks(report: PipelineReport): string {
  const t = report.temporal;
  // Why Temporal could not be read is among the notes.
  if (!t.reachable) return '';
  const runs = [
    ...(t.controller ? [['controller', t.controller] as const] : []),
    ...(t.streaming ? [['streaming', t.streaming] as const] : []),
    ...t.fleets.slice(0, 4).map((f) => ['fleet', f] as const),
  ];
  return `<ul>${runs.map(([label, r]) => `<li>${label}: <a href="${escapeXml(r.url)}">${escapeXml(r.workflowId)}</a> (${escapeXml(r.status)})</li>`).join('')}</ul>`;
}

export function renderHtml(report: PipelineReport): string {
  const series = report.series ?? { routes: [], weather: [], incidents: [], cameras: [] };
  const colours = vehicleColours([...series.routes, ...series.weather].map((j) => j.vehicleId).sort());
  const bars = report.windows.map((w) => {
    const rows = w.rows ? Object.values(w.rows).reduce((a, b) => a + b, 0) : 0;
    return { label: shortTime(w.from).slice(11, 16), value: rows, status: w.status, title: `${w.from}: ${w.status}, ${rows} rows` };
  });
  const span = series.from !== undefined && series.to !== undefined ? `${shortTime(new Date(series.from).toISOString())} → ${shortTime(new Date(series.to).toISOString())} UTC` : '';
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>smartcity report ${escapeXml(shortTime(report.generatedAt))}</title><style>${STYLE}</style></head>
<body>
<h1>smartcity pipeline report</h1>
<p class="meta">${escapeXml(shortTime(report.generatedAt))} UTC · ${escapeXml(report.target)} target · ${escapeXml(report.dataDir)}</p>
<h2>Rows per source and layer</h2>${rowsTable(report)}
<h2>Routes, cameras and incidents</h2>
<p class="meta">Raw events ${escapeXml(span)}: ${series.routes.length} journeys, ${series.cameras.length} cameras, ${series.incidents.length} incidents.</p>
${legend(colours)}${mapSvg({ ...series, colours })}
<h2>Speed</h2>${lineChart('speed', 'km/h', lines(series.routes, colours, (p) => p.speedKmh, 'speed, km/h'))}
<h2>Weather</h2>${lineChart('temperature', '°C', lines(series.weather, colours, (p) => p.temperatureC, 'temperature, °C'))}
${lineChart('precipitation', 'precipitation, mm', lines(series.weather, colours, (p) => p.precipitationMm, 'precipitation, mm'), { width: 760, height: 140 })}
<h2>Windows</h2>${barChart('window-status', bars)}${windowsTable(report)}
<h2>Runs in the Temporal Web UI</h2>${runLinks(report)}
${report.notes.map((n) => `<p class="note">${escapeXml(n)}</p>`).join('\n')}
<script>${SCRIPT}</script>
</body></html>
`;
}
