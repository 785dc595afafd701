// The local target's ad-hoc queries (Athena on aws): a window's quality checks across raw, curated
// and the warehouse, and raw row counts for late-data detection.
import { listValue, type DuckDBConnection, type DuckDBValue } from '@duckdb/node-api';
import { existsSync } from 'node:fs';
import { withCuratedLayer } from './curated-lock';
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
  tableColumnNames,
  tableRoot,
  toNumber,
  toText,
  withDatabase,
  type Params,
  type Window,
} from './duckdb';
import { bounds, examples, rulesOf, type ColumnRule } from '../schemas/column-rules';
import type { QualityCheck, QualityResult, SourceCounts, TimeWindow } from './types';
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

async function idDifference(conn: DuckDBConnection, left: string, right: string): Promise<{ count: number; examples: unknown }> {
  const [row] = await queryRows(
    conn,
    `SELECT count(*) AS n, list(event_id ORDER BY event_id)[1:3] AS examples
     FROM (SELECT event_id FROM ${left} EXCEPT SELECT event_id FROM ${right})`,
  );
  return { count: toNumber(row?.n), examples: row?.examples };
}

async function checkSource(conn: DuckDBConnection, config: Config, source: Source, window: Window, warehouse: boolean): Promise<SourceCheck> {
  const partitions = hourPartitions(window);
  const id = ident(EVENT_ID);
  const time = ident(EVENT_TIME);
  const inWindow = (expr: string) => `${expr} >= $from::TIMESTAMPTZ AND ${expr} < $to::TIMESTAMPTZ`;
  const span = { from: window.from, to: window.to };
  const stage = async (table: string, select: string, from: string | undefined, params: Params) => {
    if (from === undefined) await conn.run(`CREATE OR REPLACE TEMP TABLE ${table} (event_id VARCHAR)`);
    else await conn.run(`CREATE OR REPLACE TEMP TABLE ${table} AS SELECT ${select} AS event_id FROM ${from}`, params);
  };

  // Raw holds event_time as sent (ISO text); curated and the warehouse as TIMESTAMPTZ.
  const rawFiles = await listParquet(tableRoot(config, 'raw', source), partitions);
  await stage('raw_ids', `DISTINCT ${id}`, rawFiles.length ? `${scanParquet('$files')} WHERE ${inWindow(`CAST(${time} AS TIMESTAMPTZ)`)}` : undefined, {
    ...span,
    files: fileList(rawFiles),
  });
  const curatedFiles = await listParquet(tableRoot(config, 'curated', source), partitions);
  await stage('curated_ids', id, curatedFiles.length ? `${scanParquet('$files')} WHERE ${inWindow(time)}` : undefined, {
    ...span,
    files: fileList(curatedFiles),
  });
  const warehouseColumns = warehouse ? await tableColumnNames(conn, source) : [];
  const hasTable = warehouseColumns.length > 0;
  await stage('warehouse_ids', id, hasTable ? `${ident(source)} WHERE ${inWindow(time)}` : undefined, span);

  const [counts] = await queryRows(
    conn,
    `SELECT (SELECT count(*) FROM raw_ids) AS raw, (SELECT count(*) FROM curated_ids) AS curated,
            (SELECT count(DISTINCT event_id) FROM curated_ids) AS curated_distinct, (SELECT count(*) FROM warehouse_ids) AS warehouse`,
  );
  const raw = toNumber(counts?.raw);
  const curated = toNumber(counts?.curated);
  const warehouseRows = toNumber(counts?.warehouse);
  const checks: QualityCheck[] = [];

  const notCurated = await idDifference(conn, 'raw_ids', 'curated_ids');
  const notRaw = await idDifference(conn, 'curated_ids', 'raw_ids');
  const curatedCopies = curated - toNumber(counts?.curated_distinct);
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

  const notLoaded = await idDifference(conn, 'curated_ids', 'warehouse_ids');
  const notInCurated = await idDifference(conn, 'warehouse_ids', 'curated_ids');
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

  const [dupes] = await queryRows(
    conn,
    `SELECT count(*) AS n, list(event_id || ' ×' || copies ORDER BY event_id)[1:3] AS examples
     FROM (SELECT event_id, count(*) AS copies FROM warehouse_ids GROUP BY event_id HAVING count(*) > 1)`,
  );
  const duplicated = toNumber(dupes?.n);
  checks.push({
    name: `unique_event_id.${source}`,
    passed: duplicated === 0,
    detail:
      duplicated === 0
        ? `every event_id occurs once in warehouse table ${source} for the window`
        : `${duplicated} event_ids occur more than once in warehouse table ${source}${examples(dupes?.examples)}; re-run loadWarehouse for ${window.label}, which replaces the window`,
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
  const selects = ['count(*) AS rows'];
  checked.forEach((rule, i) => {
    const c = ident(rule.column);
    if (rule.required) selects.push(`count(*) FILTER (WHERE ${c} IS NULL) AS null_${i}`, `min(${id}) FILTER (WHERE ${c} IS NULL) AS null_id_${i}`);
    const wrong = violation(rule, b);
    if (wrong) {
      selects.push(
        `count(*) FILTER (WHERE ${wrong}) AS bad_${i}`,
        `min(${id}) FILTER (WHERE ${wrong}) AS bad_id_${i}`,
        `min(${c}) FILTER (WHERE ${wrong})::VARCHAR AS bad_min_${i}`,
        `max(${c}) FILTER (WHERE ${wrong})::VARCHAR AS bad_max_${i}`,
      );
    }
  });
  const [row] = hasTable
    ? await queryRows(
        conn,
        `SELECT ${selects.join(', ')} FROM ${ident(source)} WHERE ${ident(EVENT_TIME)} >= ${from}::TIMESTAMPTZ AND ${ident(EVENT_TIME)} < ${to}::TIMESTAMPTZ`,
        b.values,
      )
    : [undefined];

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
    async checkQuality(input: { window: TimeWindow }): Promise<QualityResult> {
      return heartbeating(() => withCuratedLayer(async () => {
        const window = parseWindow(input.window);
        // Before the first load there is no warehouse file: its tables count as empty.
        const loaded = existsSync(warehouse);
        return withDatabase(
          loaded ? warehouse : undefined,
          async (conn) => {
            const counts = { raw: zeroCounts(), curated: zeroCounts(), warehouse: zeroCounts() };
            const checks: QualityCheck[] = [];
            for (const source of SOURCES) {
              const result = await checkSource(conn, config, source, window, loaded);
              counts.raw[source] = result.raw;
              counts.curated[source] = result.curated;
              counts.warehouse[source] = result.warehouse;
              checks.push(...result.checks);
            }
            return { passed: checks.every((c) => c.passed), checks, counts };
          },
          { readOnly: true },
        );
      }));
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
