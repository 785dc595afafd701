// The local target's ad-hoc queries (Athena on aws): a window's quality checks across raw, curated
// and the warehouse, and raw row counts for late-data detection.
import { listValue, type DuckDBConnection, type DuckDBValue } from '@duckdb/node-api';
import { existsSync } from 'node:fs';
import { curatedFiles, curatedParams, curatedScan, type SnapshotFiles } from './iceberg';
import { heartbeating } from './heartbeat';
import type { Config } from '../config';
import { SOURCES, type Source } from '../schemas';
import {
  EVENT_ID,
  EVENT_TIME,
  fileList,
  hourPartitions,
  ident,
  listParquet,
  parseWindow,
  queryRows,
  scanParquet,
  tableRoot,
  tablesColumnNames,
  toNumber,
  toText,
  withDatabase,
  type Params,
  type Window,
} from './duckdb';
import { bounds, examples, rulesOf, type ColumnRule } from '../schemas/column-rules';
import type { CuratedRead, QualityCheck, QualityResult, SourceCounts, TimeWindow } from './types';
import { warehousePath } from './warehouse';

// ---- checks ----------------------------------------------------------------------------------

const zeroCounts = (): SourceCounts => Object.fromEntries(SOURCES.map((s) => [s, 0])) as SourceCounts;

/** Collects positional parameters while a statement is built. */
class Bindings {
  readonly values: DuckDBValue[] = [];
  bind(value: DuckDBValue): string {
    this.values.push(value);
    return `$${this.values.length}`;
  }
}

/** SQL condition true when the column's value breaks the rule (NULL when the value is NULL). */
function violation(rule: ColumnRule, b: Bindings): string | undefined {
  const c = ident(rule.column);
  const wrong: string[] = [];
  if (rule.minimum !== undefined) wrong.push(`${c} < ${b.bind(rule.minimum)}`);
  if (rule.exclusiveMinimum !== undefined) wrong.push(`${c} <= ${b.bind(rule.exclusiveMinimum)}`);
  if (rule.maximum !== undefined) wrong.push(`${c} > ${b.bind(rule.maximum)}`);
  if (rule.exclusiveMaximum !== undefined) wrong.push(`${c} >= ${b.bind(rule.exclusiveMaximum)}`);
  if (rule.allowed) wrong.push(`NOT list_contains(${b.bind(listValue(rule.allowed))}, ${c})`);
  return wrong.length ? wrong.join(' OR ') : undefined;
}

interface SourceCheck {
  raw: number;
  curated: number;
  warehouse: number;
  checks: QualityCheck[];
}

/** How many event_ids meet `condition`, and the first few (as `label` renders them). */
function idsWhere(name: string, condition: string, label = 'event_id'): string {
  return `count_if(${condition}) AS ${name}_n, (list(${label} ORDER BY event_id) FILTER (WHERE ${condition}))[1:3] AS ${name}_examples`;
}

async function checkSource(conn: DuckDBConnection, config: Config, source: Source, window: Window, curatedSnapshot: SnapshotFiles, warehouseColumns: string[]): Promise<SourceCheck> {
  const partitions = hourPartitions(window);
  const id = ident(EVENT_ID);
  const time = ident(EVENT_TIME);
  const inWindow = (expr: string) => `${expr} >= $from::TIMESTAMPTZ AND ${expr} < $to::TIMESTAMPTZ`;
  const none = 'SELECT NULL::INTEGER AS layer, NULL::VARCHAR AS event_id WHERE false';
  const params: Params = {};

  // The event_ids of the window in each layer, each read once. Raw holds event_time as sent (ISO
  // text); curated and the warehouse as TIMESTAMPTZ.
  const rawFiles = await listParquet(tableRoot(config, 'raw', source), partitions);
  if (rawFiles.length) params.raw_files = fileList(rawFiles);
  const hasCurated = curatedSnapshot.data.length > 0;
  if (hasCurated) Object.assign(params, curatedParams(curatedSnapshot, 'curated'));
  const hasTable = warehouseColumns.length > 0;
  // DuckDB refuses a parameter the statement does not use: the bounds only when a layer is read.
  if (rawFiles.length || hasCurated || hasTable) Object.assign(params, { from: window.from, to: window.to });
  // One pass: each event_id of the window with the copies each layer holds.
  const [row] = await queryRows(
    conn,
    `WITH ids AS (
       SELECT event_id, count_if(layer = 0) > 0 AS in_raw, count_if(layer = 1) AS curated, count_if(layer = 2) AS warehouse
       FROM (${rawFiles.length ? `SELECT 0 AS layer, ${id} AS event_id FROM ${scanParquet('$raw_files')} WHERE ${inWindow(`CAST(${time} AS TIMESTAMPTZ)`)}` : none}
             UNION ALL ${hasCurated ? `SELECT 1, ${id} FROM ${curatedScan(curatedSnapshot, 'curated')} WHERE ${inWindow(time)}` : none}
             UNION ALL ${hasTable ? `SELECT 2, ${id} FROM ${ident(source)} WHERE ${inWindow(time)}` : none})
       GROUP BY event_id)
     SELECT count_if(in_raw) AS raw, coalesce(sum(curated), 0) AS curated, count_if(curated > 0) AS curated_distinct, coalesce(sum(warehouse), 0) AS warehouse,
       ${idsWhere('not_curated', 'in_raw AND curated = 0')},
       ${idsWhere('not_raw', 'curated > 0 AND NOT in_raw')},
       ${idsWhere('not_loaded', 'curated > 0 AND warehouse = 0')},
       ${idsWhere('not_in_curated', 'warehouse > 0 AND curated = 0')},
       ${idsWhere('dupes', 'warehouse > 1', `event_id || ' ×' || warehouse`)}
     FROM ids`,
    params,
  );
  const raw = toNumber(row?.raw);
  const curated = toNumber(row?.curated);
  const warehouseRows = toNumber(row?.warehouse);
  const difference = (name: string) => ({ count: toNumber(row?.[`${name}_n`]), examples: row?.[`${name}_examples`] });
  const checks: QualityCheck[] = [];

  const notCurated = difference('not_curated');
  const notRaw = difference('not_raw');
  const curatedCopies = curated - toNumber(row?.curated_distinct);
  const reconciled = curated === raw && notCurated.count === 0 && notRaw.count === 0;
  checks.push({
    name: `reconcile_raw_curated.${source}`,
    passed: reconciled,
    detail: reconciled
      ? `${curated} curated rows = ${raw} distinct raw event_ids`
      : [
          `curated has ${curated} rows for ${raw} distinct raw event_ids`,
          notCurated.count ? `${notCurated.count} raw event_ids missing from curated${examples(notCurated.examples)}` : '',
          notRaw.count ? `${notRaw.count} curated event_ids not in raw${examples(notRaw.examples)}` : '',
          curatedCopies ? `${curatedCopies} extra copies of event_ids in curated` : '',
          `re-run curateWindow for ${window.label}`,
        ]
          .filter(Boolean)
          .join('; '),
  });

  const notLoaded = difference('not_loaded');
  const notInCurated = difference('not_in_curated');
  const loaded = warehouseRows === curated && notLoaded.count === 0 && notInCurated.count === 0;
  checks.push({
    name: `warehouse_matches_curated.${source}`,
    passed: loaded,
    detail: loaded
      ? `${warehouseRows} warehouse rows = ${curated} curated rows`
      : [
          `warehouse table ${source} has ${warehouseRows} rows for the window, curated ${curated}`,
          !hasTable && curated > 0 ? `the warehouse has no table ${source} yet` : '',
          notLoaded.count ? `${notLoaded.count} curated event_ids missing from the warehouse${examples(notLoaded.examples)}` : '',
          notInCurated.count ? `${notInCurated.count} warehouse event_ids not in curated${examples(notInCurated.examples)}` : '',
          `re-run loadWarehouse for ${window.label}`,
        ]
          .filter(Boolean)
          .join('; '),
  });

  const dupes = difference('dupes');
  checks.push({
    name: `unique_event_id.${source}`,
    passed: dupes.count === 0,
    detail:
      dupes.count === 0
        ? `every event_id occurs once in warehouse table ${source} for the window`
        : `${dupes.count} event_ids occur more than once in warehouse table ${source}${examples(dupes.examples)}; re-run loadWarehouse for ${window.label}, which replaces the window`,
  });

  checks.push(...(await contractChecks(conn, source, window, warehouseColumns)));
  return { raw, curated, warehouse: warehouseRows, checks };
}

/** Required columns without NULLs and values the contract allows, over the window's warehouse rows. */
async function contractChecks(conn: DuckDBConnection, source: Source, window: Window, columns: string[]): Promise<QualityCheck[]> {
  const rules = rulesOf(source);
  const present = new Set(columns);
  const hasTable = columns.length > 0;
  const required = rules.filter((r) => r.required);
  const missing = hasTable ? required.filter((r) => !present.has(r.column)).map((r) => r.column) : [];
  const checked = rules.filter((r) => present.has(r.column));

  const b = new Bindings();
  const from = b.bind(window.from);
  const to = b.bind(window.to);
  const id = ident(EVENT_ID);
  // Counts first; the examples (which event_id, which values) only for a window that breaks a
  // rule, so a clean window costs one light pass.
  const counts = ['count(*) AS rows'];
  const details: string[] = [];
  checked.forEach((rule, i) => {
    const c = ident(rule.column);
    if (rule.required) {
      counts.push(`count_if(${c} IS NULL) AS null_${i}`);
      details.push(`min(${id}) FILTER (WHERE ${c} IS NULL) AS null_id_${i}`);
    }
    const wrong = violation(rule, b);
    if (wrong) {
      counts.push(`count_if(${wrong}) AS bad_${i}`);
      details.push(
        `min(${id}) FILTER (WHERE ${wrong}) AS bad_id_${i}`,
        `min(${c}) FILTER (WHERE ${wrong})::VARCHAR AS bad_min_${i}`,
        `max(${c}) FILTER (WHERE ${wrong})::VARCHAR AS bad_max_${i}`,
      );
    }
  });
  const select = async (selects: string[]) =>
    (
      await queryRows(
        conn,
        `SELECT ${selects.join(', ')} FROM ${ident(source)} WHERE ${ident(EVENT_TIME)} >= ${from}::TIMESTAMPTZ AND ${ident(EVENT_TIME)} < ${to}::TIMESTAMPTZ`,
        b.values,
      )
    )[0];
  let row = hasTable ? await select(counts) : undefined;
  if (row && Object.entries(row).some(([name, n]) => name !== 'rows' && toNumber(n) > 0)) row = { ...row, ...(await select(details)) };

  const nulls: string[] = missing.map((c) => `column ${c} is missing from the table`);
  const outside: string[] = [];
  checked.forEach((rule, i) => {
    const nullRows = toNumber(row?.[`null_${i}`]);
    if (nullRows) nulls.push(`${rule.column}: ${nullRows} rows (e.g. event_id ${toText(row?.[`null_id_${i}`])})`);
    const badRows = toNumber(row?.[`bad_${i}`]);
    if (badRows) {
      const expected = rule.allowed ? `one of ${rule.allowed.map((v) => JSON.stringify(v)).join(', ')}` : `within ${bounds(rule)}`;
      const seen = row?.[`bad_min_${i}`] === row?.[`bad_max_${i}`] ? toText(row?.[`bad_min_${i}`]) : `${toText(row?.[`bad_min_${i}`])} … ${toText(row?.[`bad_max_${i}`])}`;
      outside.push(`${rule.column}: ${badRows} rows not ${expected}, seen ${seen} (e.g. event_id ${toText(row?.[`bad_id_${i}`])})`);
    }
  });
  const rows = toNumber(row?.rows);
  const where = `warehouse table ${source}, ${window.label}`;
  const fix = 'fix the producer or the curate job, then re-run the window';
  return [
    {
      name: `required_not_null.${source}`,
      passed: nulls.length === 0,
      detail: nulls.length
        ? `NULL in required columns of ${where}: ${nulls.join('; ')}; ${fix}`
        : `${rows} rows, no NULL in ${required.length} required columns`,
    },
    {
      name: `values_in_range.${source}`,
      passed: outside.length === 0,
      detail: outside.length ? `values outside the contract in ${where}: ${outside.join('; ')}; ${fix}` : `${rows} rows within the ranges and values of schemas/v1`,
    },
  ];
}

export function queryActivities(config: Config) {
  const warehouse = warehousePath(config);
  return {
    /** The window's counts per layer and the checks that must hold once it is loaded. */
    async checkQuality(input: CuratedRead): Promise<QualityResult> {
      return heartbeating(async () => {
        const window = parseWindow(input.window);
        // The snapshots the window's curate committed, as the load read them.
        const curated = await Promise.all(SOURCES.map((source) => curatedFiles(config, source, window, input.snapshots?.[source])));
        // Before the first load there is no warehouse file: its tables count as empty.
        const loaded = existsSync(warehouse);
        return withDatabase(
          loaded ? warehouse : undefined,
          async (conn) => {
            const counts = { raw: zeroCounts(), curated: zeroCounts(), warehouse: zeroCounts() };
            const checks: QualityCheck[] = [];
            const tables = loaded ? await tablesColumnNames(conn) : new Map<string, string[]>();
            for (const [i, source] of SOURCES.entries()) {
              const result = await checkSource(conn, config, source, window, curated[i]!, tables.get(source) ?? []);
              counts.raw[source] = result.raw;
              counts.curated[source] = result.curated;
              counts.warehouse[source] = result.warehouse;
              checks.push(...result.checks);
            }
            return { passed: checks.every((c) => c.passed), checks, counts };
          },
          { readOnly: true },
        );
      });
    },

    /** Raw rows (every copy, as landed) per source for each window, in the order given. */
    async countRawWindows(input: { windows: TimeWindow[] }): Promise<SourceCounts[]> {
      const windows = input.windows.map(parseWindow);
      const result = windows.map(zeroCounts);
      if (windows.length === 0) return result;
      const partitions = [...new Set(windows.flatMap(hourPartitions))];
      return heartbeating(() => withDatabase(undefined, async (conn) => {
        for (const source of SOURCES) {
          const files = await listParquet(tableRoot(config, 'raw', source), partitions);
          if (files.length === 0) continue;
          const b = new Bindings();
          const list = b.bind(fileList(files));
          const time = `CAST(${ident(EVENT_TIME)} AS TIMESTAMPTZ)`;
          const perWindow = windows.map(
            (w, i) => `count(*) FILTER (WHERE ${time} >= ${b.bind(w.from)}::TIMESTAMPTZ AND ${time} < ${b.bind(w.to)}::TIMESTAMPTZ) AS w${i}`,
          );
          const [row] = await queryRows(
            conn,
            `SELECT ${perWindow.join(', ')} FROM ${scanParquet(list)}`,
            b.values,
          );
          windows.forEach((_, i) => {
            result[i]![source] = toNumber(row?.[`w${i}`]);
          });
        }
        return result;
      }));
    },
  };
}
