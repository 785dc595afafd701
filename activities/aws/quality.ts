// The window quality checks on the aws target, the same as the local ones (activities/queries.ts):
// same names, same QualityResult. Raw and curated are compared on Athena (Trino SQL over the Glue
// tables; curated as of the curate's Iceberg snapshot when the run knows it), the warehouse on
// Redshift; curated and the warehouse compare by count and an order-independent fingerprint of
// their event ids, so no id leaves either engine.
import { SOURCES, type Source } from '../../schemas';
import { EVENT_ID, hourPartitions, parseWindow, zeroCounts, type Window } from '../lake';
import { bounds, examples, rulesOf, type ColumnRule } from '../../schemas/column-rules';
import { ident, rowBigint, rowNumber, sqlString, type Row } from '../sql';
import type { CuratedRead, PipelineActivities, QualityCheck, QualityResult, Snapshots } from '../types';
import { curatedFrom, inWindow, partitionFilter, queryOperation } from './athena';
import type { AwsDeps } from './clients';
import { catalogTables, curatedTable, curatedTableMissing, tableName, type Catalog } from './glue';
import { allOperations, idempotencyToken, runRemoteOperation, type RemoteOperation } from './operation';
import { statementOperation, windowPredicate } from './redshift';

// ---- the lake side: Athena ---------------------------------------------------------------------

/**
 * An order-independent fingerprint of a multiset of event ids: the sum of the first 32 bits of
 * each id's MD5. Equal counts and fingerprints in two engines mean the same ids; Redshift computes
 * the same number (warehouseQualitySql) so curated and the warehouse compare without moving ids.
 */
const lakeFingerprint = (column: string): string => `sum(from_base(substr(to_hex(md5(to_utf8(${column}))), 1, 8), 16))`;

const EMPTY_IDS = `SELECT event_id FROM (VALUES CAST(NULL AS varchar)) AS t(event_id) WHERE FALSE`;

/**
 * Per source: raw distinct ids, curated rows, their differences with examples, curated fingerprint.
 * Curated is read as of the source's snapshot in `snapshots`, else as the table is now.
 */
export function lakeQualitySql(deps: AwsDeps, catalog: Catalog, window: Window, sources: readonly Source[], snapshots: Snapshots = {}): string {
  const partitions = hourPartitions(window);
  const ctes: string[] = [];
  const selects: string[] = [];
  for (const source of sources) {
    const rawIds = () => {
      const table = catalog.get(tableName('raw', source));
      if (!table) return EMPTY_IDS;
      return `SELECT DISTINCT ${ident(EVENT_ID)} AS event_id FROM ${ident(table.name)} WHERE ${partitionFilter(table, partitions)} AND ${inWindow('raw', window.from, window.to)}`;
    };
    // Iceberg prunes the hours(event_time) partitions from the predicate on event_time itself.
    const curatedIds = () => {
      const table = curatedTable(deps, catalog, source);
      if (!table) return EMPTY_IDS;
      return `SELECT ${ident(EVENT_ID)} AS event_id FROM ${curatedFrom(deps, table, source, snapshots[source])} WHERE ${inWindow('curated', window.from, window.to)}`;
    };
    const r = `r_${source}`;
    const c = `c_${source}`;
    ctes.push(`${r} AS (${rawIds()})`, `${c} AS (${curatedIds()})`);
    const diff = (a: string, b: string) => `(SELECT event_id FROM ${a} EXCEPT SELECT event_id FROM ${b})`;
    const sample = (a: string, b: string) => `(SELECT array_join(slice(array_sort(array_agg(event_id)), 1, 3), ', ') FROM ${diff(a, b)})`;
    selects.push(
      `SELECT ${sqlString(source)} AS source, (SELECT count(*) FROM ${r}) AS raw, (SELECT count(*) FROM ${c}) AS curated, ` +
        `(SELECT count(DISTINCT event_id) FROM ${c}) AS curated_distinct, ` +
        `(SELECT count(*) FROM ${diff(r, c)}) AS not_curated, ${sample(r, c)} AS not_curated_examples, ` +
        `(SELECT count(*) FROM ${diff(c, r)}) AS not_raw, ${sample(c, r)} AS not_raw_examples, ` +
        `(SELECT ${lakeFingerprint('event_id')} FROM ${c}) AS curated_fingerprint`,
    );
  }
  return `WITH ${ctes.join(',\n')}\n${selects.join('\nUNION ALL\n')}`;
}

// ---- the warehouse side: Redshift -------------------------------------------------------------------

export interface WarehouseQuality {
  rows: number;
  distinctIds: number;
  /** Same recipe as the lake's (lakeFingerprint): sum of the first 32 bits of each event_id's MD5. */
  fingerprint: bigint;
  /** `column: N rows (e.g. event_id …)` per required column with NULLs, or missing from the table. */
  nulls: string[];
  /** Per column with values the contract forbids. */
  outside: string[];
}

const literal = (v: string | number | boolean): string => (typeof v === 'string' ? sqlString(v) : String(v));

/** SQL condition true when the column's value breaks the rule (NULL when the value is NULL). */
function violation(rule: ColumnRule): string | undefined {
  const c = ident(rule.column);
  const wrong: string[] = [];
  if (rule.minimum !== undefined) wrong.push(`${c} < ${rule.minimum}`);
  if (rule.exclusiveMinimum !== undefined) wrong.push(`${c} <= ${rule.exclusiveMinimum}`);
  if (rule.maximum !== undefined) wrong.push(`${c} > ${rule.maximum}`);
  if (rule.exclusiveMaximum !== undefined) wrong.push(`${c} >= ${rule.exclusiveMaximum}`);
  if (rule.allowed) wrong.push(`${c} NOT IN (${rule.allowed.map(literal).join(', ')})`);
  return wrong.length ? wrong.join(' OR ') : undefined;
}

/** One SELECT over the window's warehouse rows of a source: counts, fingerprint, contract checks. */
export function warehouseQualitySql(deps: AwsDeps, source: Source, columns: string[], window: Window): { sql: string; read(row: Row | undefined): WarehouseQuality } {
  const present = new Set(columns);
  const rules = rulesOf(source);
  const checked = rules.filter((r) => present.has(r.column));
  const id = ident(EVENT_ID);
  const selects = [`count(*) AS row_count`, `count(DISTINCT ${id}) AS distinct_ids`, `sum(strtol(substring(md5(${id}), 1, 8), 16)) AS fingerprint`];
  checked.forEach((rule, i) => {
    const c = ident(rule.column);
    if (rule.required) selects.push(`sum(CASE WHEN ${c} IS NULL THEN 1 ELSE 0 END) AS null_${i}`, `min(CASE WHEN ${c} IS NULL THEN ${id} END) AS null_id_${i}`);
    const wrong = violation(rule);
    if (wrong) {
      selects.push(
        `sum(CASE WHEN ${wrong} THEN 1 ELSE 0 END) AS bad_${i}`,
        `min(CASE WHEN ${wrong} THEN ${id} END) AS bad_id_${i}`,
        `CAST(min(CASE WHEN ${wrong} THEN ${c} END) AS VARCHAR) AS bad_min_${i}`,
        `CAST(max(CASE WHEN ${wrong} THEN ${c} END) AS VARCHAR) AS bad_max_${i}`,
      );
    }
  });
  const sql = `SELECT ${selects.join(', ')} FROM ${ident(deps.aws.redshift.schema)}.${ident(source)} WHERE ${windowPredicate(window)}`;
  const n = rowNumber;
  const text = (v: Row[string] | undefined) => (v === null || v === undefined ? '' : String(v));
  return {
    sql,
    read(row) {
      const nulls = rules.filter((r) => r.required && !present.has(r.column)).map((r) => `column ${r.column} is missing from the table`);
      const outside: string[] = [];
      checked.forEach((rule, i) => {
        const nullRows = n(row?.[`null_${i}`]);
        if (nullRows) nulls.push(`${rule.column}: ${nullRows} rows (e.g. event_id ${text(row?.[`null_id_${i}`])})`);
        const badRows = n(row?.[`bad_${i}`]);
        if (badRows) {
          const expected = rule.allowed ? `one of ${rule.allowed.map((v) => JSON.stringify(v)).join(', ')}` : `within ${bounds(rule)}`;
          const low = text(row?.[`bad_min_${i}`]);
          const high = text(row?.[`bad_max_${i}`]);
          outside.push(`${rule.column}: ${badRows} rows not ${expected}, seen ${low === high ? low : `${low} … ${high}`} (e.g. event_id ${text(row?.[`bad_id_${i}`])})`);
        }
      });
      return {
        rows: n(row?.row_count),
        distinctIds: n(row?.distinct_ids),
        fingerprint: rowBigint(row?.fingerprint),
        nulls,
        outside,
      };
    },
  };
}

/** The warehouse quality SELECTs of the sources as one statement (a batch when several). */
export function warehouseQualityOperation(
  deps: AwsDeps,
  window: Window,
  sources: { source: Source; columns: string[] }[],
  token: (joined: string) => string,
): RemoteOperation<string, Map<Source, WarehouseQuality>> {
  const queries = sources.map((s) => ({ source: s.source, ...warehouseQualitySql(deps, s.source, s.columns, window) }));
  const op = statementOperation(deps, {
    what: `warehouse checks of ${window.label}`,
    sqls: queries.map((q) => q.sql),
    results: queries.map((_, i) => i),
    token,
  });
  return {
    ...op,
    async poll(id) {
      const status = await op.poll(id);
      if (!status.done) return status;
      return { done: true, result: new Map(queries.map((q, i) => [q.source, q.read(status.result[i]?.[0])])) };
    },
  };
}

// ---- the checks --------------------------------------------------------------------------------

const list = (v: Row[string] | undefined): string[] => (typeof v === 'string' && v !== '' ? v.split(', ') : []);

function lakeChecks(source: Source, row: Row | undefined, window: Window): QualityCheck {
  const raw = rowNumber(row?.raw);
  const curated = rowNumber(row?.curated);
  const notCurated = rowNumber(row?.not_curated);
  const notRaw = rowNumber(row?.not_raw);
  const copies = curated - rowNumber(row?.curated_distinct);
  const passed = curated === raw && notCurated === 0 && notRaw === 0;
  return {
    name: `reconcile_raw_curated.${source}`,
    passed,
    detail: passed
      ? `${curated} curated rows = ${raw} distinct raw event_ids`
      : [
          `curated has ${curated} rows for ${raw} distinct raw event_ids`,
          notCurated ? `${notCurated} raw event_ids missing from curated${examples(list(row?.not_curated_examples))}` : '',
          notRaw ? `${notRaw} curated event_ids not in raw${examples(list(row?.not_raw_examples))}` : '',
          copies ? `${copies} extra copies of event_ids in curated` : '',
          `re-run curateWindow for ${window.label}`,
        ]
          .filter(Boolean)
          .join('; '),
  };
}

function warehouseChecks(source: Source, lake: Row | undefined, wh: WarehouseQuality | undefined, window: Window): QualityCheck[] {
  const curated = rowNumber(lake?.curated);
  const rows = wh?.rows ?? 0;
  const sameIds = rowBigint(lake?.curated_fingerprint) === (wh?.fingerprint ?? 0n);
  const loaded = rows === curated && sameIds;
  const copies = rows - (wh?.distinctIds ?? 0);
  const where = `warehouse table ${source}, ${window.label}`;
  const fix = 'fix the producer or the curate job, then re-run the window';
  const rules = rulesOf(source);
  const required = rules.filter((r) => r.required);
  return [
    {
      name: `warehouse_matches_curated.${source}`,
      passed: loaded,
      detail: loaded
        ? `${rows} warehouse rows = ${curated} curated rows`
        : [
            `warehouse table ${source} has ${rows} rows for the window, curated ${curated}`,
            !wh && curated > 0 ? `the curated layer of ${source} is not in the Glue catalog, so the warehouse was not loaded: crawl curated` : '',
            rows === curated && !sameIds ? 'the event_ids differ (their fingerprints do not match)' : '',
            `re-run loadWarehouse for ${window.label}`,
          ]
            .filter(Boolean)
            .join('; '),
    },
    {
      name: `unique_event_id.${source}`,
      passed: copies === 0,
      detail:
        copies === 0
          ? `every event_id occurs once in warehouse table ${source} for the window`
          : `${copies} extra copies of event_ids in warehouse table ${source}; re-run loadWarehouse for ${window.label}, which replaces the window`,
    },
    {
      name: `required_not_null.${source}`,
      passed: (wh?.nulls.length ?? 0) === 0,
      detail: wh?.nulls.length
        ? `NULL in required columns of ${where}: ${wh.nulls.join('; ')}; ${fix}`
        : `${rows} rows, no NULL in ${required.length} required columns`,
    },
    {
      name: `values_in_range.${source}`,
      passed: (wh?.outside.length ?? 0) === 0,
      detail: wh?.outside.length ? `values outside the contract in ${where}: ${wh.outside.join('; ')}; ${fix}` : `${rows} rows within the ranges and values of schemas/v1`,
    },
  ];
}

export function qualityActivities(deps: AwsDeps): Pick<PipelineActivities, 'checkQuality'> {
  return {
    /**
     * The window's counts per layer (Athena over the lake, Redshift for the warehouse) and the checks
     * that must hold once it is loaded; curated as of `snapshots` where given.
     */
    async checkQuality(input: CuratedRead): Promise<QualityResult> {
      const window = parseWindow(input.window);
      const catalog = await catalogTables(deps);
      const snapshots = input.snapshots ?? {};
      const curated = new Map(SOURCES.flatMap((s) => {
        const table = curatedTable(deps, catalog, s);
        return table ? [[s, table] as const] : [];
      }));
      for (const [source, id] of Object.entries(snapshots) as [Source, string][]) {
        if (!curated.has(source)) throw curatedTableMissing(deps, window.label, source, id);
      }
      const inLake = SOURCES.filter((s) => catalog.has(tableName('raw', s)) || curated.has(s));
      // The load creates a source's warehouse table once its curated table exists.
      const loaded = SOURCES.filter((s) => curated.has(s));
      const parts: Record<string, RemoteOperation<unknown, unknown>> = {};
      if (inLake.length) {
        const sql = lakeQualitySql(deps, catalog, window, inLake, snapshots);
        parts.lake = queryOperation(deps, { what: `lake counts for ${window.label}`, sql, token: idempotencyToken('quality-lake', sql) });
      }
      if (loaded.length) {
        const columns = loaded.map((s) => ({ source: s, columns: curated.get(s)!.columns.map((c) => c.name) }));
        parts.warehouse = warehouseQualityOperation(deps, window, columns, (joined) => idempotencyToken('quality-warehouse', joined));
      }
      const results = Object.keys(parts).length
        ? ((await runRemoteOperation(deps, allOperations(`quality checks of ${window.label}`, parts))) as { lake?: Row[]; warehouse?: Map<Source, WarehouseQuality> })
        : {};
      const counts = { raw: zeroCounts(), curated: zeroCounts(), warehouse: zeroCounts() };
      const checks: QualityCheck[] = [];
      for (const source of SOURCES) {
        const lake = results.lake?.find((r) => r.source === source);
        const wh = results.warehouse?.get(source);
        counts.raw[source] = rowNumber(lake?.raw);
        counts.curated[source] = rowNumber(lake?.curated);
        counts.warehouse[source] = wh?.rows ?? 0;
        checks.push(lakeChecks(source, lake, window), ...warehouseChecks(source, lake, wh, window));
      }
      return { passed: checks.every((c) => c.passed), checks, counts };
    }
  };
}
