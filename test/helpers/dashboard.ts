// Draws the Grafana dashboard's panels (ops/grafana/dashboards/smartcity.json) from a real
// Prometheus's data as one static HTML page, for the README's screenshot: no Grafana binary is
// packaged for Debian, npm or PyPI. Same layout grid, queries and legends as Grafana; time series
// as lines (report/charts.ts), stat panels as their last values. $__rate_interval is 1m (four
// scrapes of ops/prometheus's 10 s interval, as Grafana would compute it).
import { escapeXml, lineChart, PALETTE, type Line } from '../../report/charts';

interface Target {
  expr: string;
  legendFormat?: string;
}
export interface Panel {
  type: string;
  title: string;
  gridPos: { x: number; y: number; w: number; h: number };
  targets?: Target[];
  fieldConfig?: { defaults?: { unit?: string } };
}

const COLUMN_PX = 66;
const ROW_PX = 30;
const RATE_INTERVAL = '1m';

interface Series {
  metric: Record<string, string>;
  values?: [number, string][];
  value?: [number, string];
}

async function query(prometheus: string, path: string, params: Record<string, string>): Promise<Series[]> {
  const response = await fetch(`${prometheus}/api/v1/${path}?${new URLSearchParams(params).toString()}`, { signal: AbortSignal.timeout(10_000) });
  const body = (await response.json()) as { status: string; error?: string; data?: { result: Series[] } };
  if (body.status !== 'success') throw new Error(`${params.query}: ${body.error}`);
  return body.data!.result;
}

const legend = (format: string | undefined, metric: Record<string, string>) =>
  (format ?? '').replace(/\{\{\s*(\w+)\s*\}\}/g, (_, label: string) => metric[label] ?? '') || JSON.stringify(metric);

/** What one panel draws: its series, and how many of them hold data. */
export interface DrawnPanel {
  title: string;
  series: number;
  html: string;
}

async function drawPanel(panel: Panel, prometheus: string, range: { start: number; end: number }): Promise<DrawnPanel> {
  const width = panel.gridPos.w * COLUMN_PX - 26;
  const height = panel.gridPos.h * ROW_PX - 44;
  const unit = panel.fieldConfig?.defaults?.unit ?? '';
  const exprs = (panel.targets ?? []).map((t) => ({ ...t, expr: t.expr.replaceAll('$__rate_interval', RATE_INTERVAL) }));
  let body: string;
  let series = 0;
  if (panel.type === 'stat') {
    const values: string[] = [];
    for (const t of exprs) {
      for (const s of await query(prometheus, 'query', { query: t.expr, time: String(range.end / 1000) })) {
        const v = Number(s.value?.[1]);
        if (!Number.isFinite(v)) continue;
        series++;
        values.push(`<div class="stat"><span class="value">${escapeXml(String(Math.round(v * 100) / 100))}${unit === 's' ? ' s' : ''}</span><span class="name">${escapeXml(legend(t.legendFormat, s.metric))}</span></div>`);
      }
    }
    body = values.length ? `<div class="stats">${values.join('')}</div>` : '<div class="nodata">No data</div>';
  } else {
    const step = String(Math.max(10, Math.round((range.end - range.start) / 1000 / 200)));
    const lines: Line[] = [];
    for (const t of exprs) {
      for (const s of await query(prometheus, 'query_range', { query: t.expr, start: String(range.start / 1000), end: String(range.end / 1000), step })) {
        const points = (s.values ?? []).map(([at, v]): [number, number] => [at * 1000, Number(v)]).filter(([, v]) => Number.isFinite(v));
        if (points.length === 0) continue;
        const title = legend(t.legendFormat, s.metric);
        lines.push({ key: title, title, colour: PALETTE[lines.length % PALETTE.length]!, points });
      }
    }
    series = lines.length;
    body = lines.length
      ? `${lineChart(`panel-${panel.gridPos.x}-${panel.gridPos.y}`, unit === 'short' ? '' : unit, lines, { width, height: height - 22 })}<div class="legend">${lines
          .map((l) => `<span><i style="background:${l.colour}"></i>${escapeXml(l.title)}</span>`)
          .join('')}</div>`
      : '<div class="nodata">No data</div>';
  }
  const { x, y, w, h } = panel.gridPos;
  const html = `<section class="panel" style="grid-column:${x + 1} / span ${w};grid-row:${y + 1} / span ${h}"><h2>${escapeXml(panel.title)}</h2>${body}</section>`;
  return { title: panel.title, series, html };
}

/** The page, and per panel what it drew. */
export async function renderDashboard(dashboard: { title: string; panels: Panel[] }, prometheus: string, range: { start: number; end: number }): Promise<{ html: string; panels: DrawnPanel[] }> {
  const drawn: DrawnPanel[] = [];
  const cells: string[] = [];
  for (const panel of dashboard.panels) {
    const { x, y, w, h } = panel.gridPos;
    if (panel.type === 'row') {
      cells.push(`<h1 class="row" style="grid-column:${x + 1} / span ${w};grid-row:${y + 1} / span ${h}">${escapeXml(panel.title)}</h1>`);
      continue;
    }
    const p = await drawPanel(panel, prometheus, range);
    drawn.push(p);
    cells.push(p.html);
  }
  const span = `${new Date(range.start).toISOString().slice(11, 19)}–${new Date(range.end).toISOString().slice(11, 19)} UTC`;
  const html = `<!doctype html><html><head><meta charset="utf-8"><title>${escapeXml(dashboard.title)}</title><style>
body{margin:0;padding:12px;background:#111217;color:#ccccdc;font:13px system-ui,sans-serif;width:${24 * COLUMN_PX}px}
header{display:flex;justify-content:space-between;margin-bottom:8px}header b{font-size:16px;color:#fff}
main{display:grid;grid-template-columns:repeat(24,${COLUMN_PX - 8}px);grid-auto-rows:${ROW_PX - 8}px;gap:8px}
.row{font-size:14px;margin:0;align-self:end;color:#fff}.panel{background:#181b1f;border:1px solid #2a2d33;border-radius:3px;padding:6px 8px;overflow:hidden}
.panel h2{font-size:13px;margin:0 0 4px;color:#fff;font-weight:500}.nodata{color:#8e8e8e;text-align:center;margin-top:20%}
.stats{display:flex;flex-wrap:wrap;gap:6px 18px}.stat{display:flex;flex-direction:column}.stat .value{font-size:26px;color:#73bf69}.stat .name{color:#8e8e8e}
svg .grid{stroke:#2a2d33}svg .tick,svg .unit{fill:#8e8e8e;font-size:10px}svg .series{fill:none;stroke-width:1.5}
.legend{display:flex;flex-wrap:wrap;gap:2px 10px;font-size:11px}.legend i{display:inline-block;width:10px;height:3px;margin-right:4px;vertical-align:middle}
</style></head><body><header><b>${escapeXml(dashboard.title)}</b><span>${span} · drawn from Prometheus by test/helpers/dashboard.ts</span></header><main>${cells.join('')}</main></body></html>`;
  return { html, panels: drawn };
}
