// The report for a terminal: rows per source and layer, windows with their checks and stage
// timings, and where to look in the Temporal Web UI.
import { SOURCES } from '../schemas';
import type { PipelineReport, WindowStatus } from './model';
import type { RunLink } from './temporal';

/** Windows shown in the terminal, newest last; --json has them all. */
const SHOWN_WINDOWS = 8;
const SHOWN_FLEETS = 4;

export const seconds = (ms: number): string => `${(ms / 1000).toFixed(ms < 10_000 ? 1 : 0)}s`;

/** `2026-03-10T08:00:00.000Z` → `2026-03-10 08:00:00`; the report's times are all UTC. */
export const shortTime = (iso: string): string => iso.replace('T', ' ').replace(/(\.\d+)?Z$/, '');

/** Rows of cells as aligned columns: the first left-aligned, the others right-aligned. */
export function columns(rows: string[][]): string[] {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows.map((r) => r.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ').trimEnd());
}

function rowsTable(report: PipelineReport): string[] {
  const layers = ['raw', 'quarantine', 'curated', 'warehouse'] as const;
  const total = (layer: (typeof layers)[number]) => SOURCES.reduce((n, s) => n + report.sources[s][layer], 0);
  return columns([
    ['source', ...layers],
    ...SOURCES.map((s) => [s, ...layers.map((l) => String(report.sources[s][l]))]),
    ['total', ...layers.map((l) => String(total(l)))],
  ]);
}

function windowLines(w: WindowStatus): string[] {
  const rows = w.rows ? Object.values(w.rows).reduce((a, b) => a + b, 0) : undefined;
  const checks = w.checks ? `checks ${w.checks.passed}/${w.checks.passed + w.checks.failed.length} passed` : '';
  const head = [`${shortTime(w.from)} → ${w.to ? shortTime(w.to).slice(11) : '?'}`, w.status.padEnd(9), rows === undefined ? '' : `${rows} rows`, checks]
    .filter(Boolean)
    .join('  ');
  const lines = [`  ${head}`];
  if (w.timings) {
    const stages = Object.entries(w.timings).map(([stage, ms]) => `${stage} ${seconds(ms)}`);
    lines.push(`      stages: ${stages.join(' · ')}${w.totalMs === undefined ? '' : ` = ${seconds(w.totalMs)}`}`);
  }
  for (const failed of w.checks?.failed ?? []) lines.push(`      FAILED ${failed}`);
  if (w.error) lines.push(`      error: ${w.error}`);
  if (w.latestRun) lines.push(`      ${w.latestRun.url}`);
  return lines;
}

function linkLine(label: string, run: RunLink): string {
  return `  ${label.padEnd(11)} ${run.workflowId} (${run.status})\n  ${''.padEnd(11)} ${run.url}`;
}

export function renderTerminal(report: PipelineReport): string[] {
  const out: string[] = [];
  out.push(`smartcity report · ${shortTime(report.generatedAt)} UTC · ${report.target} target · ${report.dataDir}`);
  out.push('', 'rows per source and layer', ...rowsTable(report).map((l) => `  ${l}`));

  const loaded = report.windows.filter((w) => w.status === 'loaded').length;
  out.push('', `windows: ${report.windows.length} known, ${loaded} loaded${report.windows.length > SHOWN_WINDOWS ? ` (latest ${SHOWN_WINDOWS} shown; --json lists all)` : ''}`);
  for (const w of report.windows.slice(-SHOWN_WINDOWS)) out.push(...windowLines(w));

  const checked = report.windows.filter((w) => w.checks);
  if (checked.length > 0) {
    const passed = checked.reduce((n, w) => n + w.checks!.passed, 0);
    const failed = checked.reduce((n, w) => n + w.checks!.failed.length, 0);
    out.push('', `quality checks: ${passed} passed, ${failed} failed, over the latest run of ${checked.length} window(s)`);
  }

  if (report.catalog.length > 0) {
    const partitions = report.catalog.reduce((n, t) => n + t.partitions, 0);
    const last = report.catalog.map((t) => t.crawledAt).sort().at(-1)!;
    out.push('', `catalog: ${report.catalog.length} tables, ${partitions} partitions, last crawled ${shortTime(last)}`);
  }

  const { temporal } = report;
  if (temporal.reachable) {
    out.push('', `Temporal Web UI: ${temporal.uiUrl}`);
    if (temporal.controller) out.push(linkLine('controller', temporal.controller));
    if (temporal.streaming) out.push(linkLine('streaming', temporal.streaming));
    for (const fleet of temporal.fleets.slice(0, SHOWN_FLEETS)) out.push(linkLine('fleet', fleet));
  }
  if (report.notes.length > 0) out.push('', ...report.notes.map((n) => `note: ${n}`));
  return out;
}
