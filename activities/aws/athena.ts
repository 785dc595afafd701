// Athena on the aws target: queries over the Glue Data Catalog's lake tables (raw_<source>,
// curated_<source>) for the window quality checks and the raw counts of late-data detection. The
// warehouse side of the checks runs on Redshift (./redshift); the checks mirror the local ones
// (activities/queries.ts): same names, same QualityResult.
import {
  GetQueryExecutionCommand,
  GetQueryResultsCommand,
  StartQueryExecutionCommand,
  StopQueryExecutionCommand,
  type GetQueryResultsCommandOutput,
  type QueryExecution,
} from '@aws-sdk/client-athena';
import { ApplicationFailure } from '@temporalio/common';
import { SOURCES, type Source } from '../../schemas';
import { EVENT_ID, EVENT_TIME, hourPartitions, parseWindow, type Window } from '../lake';
import { examples, rulesOf } from '../../schemas/column-rules';
import type { PipelineActivities, QualityCheck, QualityResult, SourceCounts, TimeWindow } from '../types';
import type { AwsDeps } from './clients';
import { awsCall } from './errors';
import { glueTables } from './glue';
import { allOperations, idempotencyToken, runRemoteOperation, type RemoteOperation } from './operation';
import { warehouseQualityOperation, type Row, type WarehouseQuality } from './redshift';

// ---- the Glue Data Catalog as the queries see it ----------------------------------------------

export interface CatalogColumn {
  name: string;
  /** Hive type as the crawler wrote it: string, bigint, double, timestamp, decimal(10,2)… */
  type: string;
}

export interface CatalogTable {
  name: string;
  /** Columns of the files, in file order (what a Parquet COPY maps by position). */
  columns: CatalogColumn[];
  partitionKeys: CatalogColumn[];
}

export type Catalog = Map<string, CatalogTable>;

export const tableName = (layer: 'raw' | 'curated', source: Source): string => `${layer}_${source}`;

/** Every table of the configured Glue database, by name. */
export async function catalogTables(deps: AwsDeps): Promise<Catalog> {
  const columnsOf = (list: { Name?: string; Type?: string }[] | undefined) =>
    (list ?? []).map((c) => ({ name: (c.Name ?? '').toLowerCase(), type: (c.Type ?? '').toLowerCase() }));
  const catalog: Catalog = new Map();
  for (const t of await glueTables(deps)) {
    if (t.Name) catalog.set(t.Name, { name: t.Name, columns: columnsOf(t.StorageDescriptor?.Columns), partitionKeys: columnsOf(t.PartitionKeys) });
  }
  return catalog;
}

// ---- one Athena query: start, wait, fetch ----------------------------------------------------

function startQuery(deps: AwsDeps, sql: string, token: string): Promise<string> {
  const { athena, glue } = deps.aws;
  return awsCall(`athena:StartQueryExecution on workgroup ${athena.workgroup}`, async () => {
    const out = await deps.clients.athena.send(
      new StartQueryExecutionCommand({
        QueryString: sql,
        ClientRequestToken: token,
        WorkGroup: athena.workgroup,
        QueryExecutionContext: { Database: glue.database },
        ResultConfiguration: { OutputLocation: athena.outputLocation },
      }),
    );
    if (!out.QueryExecutionId) throw new Error('StartQueryExecution returned no QueryExecutionId');
    return out.QueryExecutionId;
  });
}

function getQueryExecution(deps: AwsDeps, id: string): Promise<QueryExecution> {
  return awsCall(`athena:GetQueryExecution on query ${id}`, async () => {
    const out = await deps.clients.athena.send(new GetQueryExecutionCommand({ QueryExecutionId: id }));
    if (!out.QueryExecution) throw new Error(`GetQueryExecution returned nothing for ${id}`);
    return out.QueryExecution;
  });
}

function getQueryResultsPage(deps: AwsDeps, id: string, nextToken: string | undefined): Promise<GetQueryResultsCommandOutput> {
  return awsCall(`athena:GetQueryResults on query ${id}`, () =>
    deps.clients.athena.send(new GetQueryResultsCommand({ QueryExecutionId: id, MaxResults: 1000, ...(nextToken !== undefined && { NextToken: nextToken }) })),
  );
}

function stopQuery(deps: AwsDeps, id: string): Promise<unknown> {
  return awsCall(`athena:StopQueryExecution on query ${id}`, () => deps.clients.athena.send(new StopQueryExecutionCommand({ QueryExecutionId: id })));
}

/** Every row of a finished query, by column name; NULL is null. */
export async function queryRows(deps: AwsDeps, id: string): Promise<Row[]> {
  const rows: Row[] = [];
  let names: string[] | undefined;
  let token: string | undefined;
  do {
    const page = await getQueryResultsPage(deps, id, token);
    const pageRows = page.ResultSet?.Rows ?? [];
    // A SELECT's first row on the first page is the header.
    const skipHeader = names === undefined;
    names ??= (page.ResultSet?.ResultSetMetadata?.ColumnInfo ?? []).map((c) => c.Name ?? '');
    for (const [i, r] of pageRows.entries()) {
      if (skipHeader && i === 0) continue;
      rows.push(Object.fromEntries(names.map((name, j) => [name, r.Data?.[j]?.VarCharValue ?? null])));
    }
    token = page.NextToken;
  } while (token);
  return rows;
}

/** One Athena query as a remote operation; a failed query fails for good with its StateChangeReason. */
export function queryOperation(deps: AwsDeps, q: { what: string; purpose: string; sql: string }): RemoteOperation<string, Row[]> {
  return {
    what: q.what,
    // The token makes a retried start return the query already started, never a second one.
    start: () => startQuery(deps, q.sql, idempotencyToken(q.purpose, q.sql)),
    async poll(id) {
      const execution = await getQueryExecution(deps, id);
      const state = execution.Status?.State;
      if (state === 'SUCCEEDED') return { done: true, result: await queryRows(deps, id) };
      if (state === 'FAILED' || state === 'CANCELLED') {
        const reason = execution.Status?.StateChangeReason ?? 'no reason given';
        const error = execution.Status?.AthenaError;
        const fix =
          state === 'CANCELLED'
            ? 'it was cancelled outside this workflow; re-run the window'
            : 'fix the query, the table (re-run the crawler) or the workgroup settings the reason names';
        throw ApplicationFailure.create({
          type: state === 'FAILED' ? 'Athena.QueryFailed' : 'Athena.QueryCancelled',
          message: `${q.what}: Athena query ${id} ${state}: ${reason}${error?.ErrorType !== undefined ? ` (error type ${error.ErrorType})` : ''} — ${fix}`,
          nonRetryable: true,
          details: [{ queryExecutionId: id, state, stateChangeReason: reason, errorCategory: error?.ErrorCategory, errorType: error?.ErrorType }],
        });
      }
      return { done: false, progress: { state } };
    },
    cancel: async (id) => {
      await stopQuery(deps, id);
    },
  };
}

// ---- SQL over the lake tables (Trino dialect) --------------------------------------------------

const ident = (name: string): string => `"${name.replaceAll('"', '""')}"`;
export const sqlString = (value: string): string => `'${value.replaceAll("'", "''")}'`;
/** An ISO instant as a TIMESTAMP literal (UTC wall time), as both Athena and Redshift read it. */
export const timestampLiteral = (iso: string): string => `TIMESTAMP ${sqlString(iso.replace('T', ' ').replace('Z', ''))}`;

/** Restricts a scan to the window's `date=…/hour=…` partitions, whatever type the crawler gave them. */
function partitionFilter(table: CatalogTable, partitions: string[]): string {
  const keys = new Map(table.partitionKeys.map((k) => [k.name, k.type]));
  if (!keys.has('date') || !keys.has('hour')) return 'TRUE';
  const value = (key: string, v: string) => (keys.get(key) === 'string' || keys.get(key)?.startsWith('varchar') ? sqlString(v) : String(Number(v)));
  const terms = partitions.map((p) => {
    const [, date = '', hour = ''] = /^date=([^/]+)\/hour=(.+)$/.exec(p) ?? [];
    return `("date" = ${value('date', date)} AND "hour" = ${value('hour', hour)})`;
  });
  return terms.length ? `(${terms.join(' OR ')})` : 'FALSE';
}

/** Raw holds event_time as sent (ISO text); curated as a timestamp. */
function timeOf(layer: 'raw' | 'curated'): string {
  return layer === 'raw' ? `from_iso8601_timestamp(${ident(EVENT_TIME)})` : ident(EVENT_TIME);
}

function inWindow(layer: 'raw' | 'curated', from: string, to: string): string {
  const bound = (iso: string) => (layer === 'raw' ? `from_iso8601_timestamp(${sqlString(iso)})` : timestampLiteral(iso));
  return `${timeOf(layer)} >= ${bound(from)} AND ${timeOf(layer)} < ${bound(to)}`;
}

/**
 * An order-independent fingerprint of a multiset of event ids: the sum of the first 32 bits of
 * each id's MD5. Equal counts and fingerprints in two engines mean the same ids; Redshift computes
 * the same number (see redshift.ts) so curated and the warehouse compare without moving ids.
 */
const athenaFingerprint = (column: string): string => `sum(from_base(substr(to_hex(md5(to_utf8(${column}))), 1, 8), 16))`;

const EMPTY_IDS = `SELECT event_id FROM (VALUES CAST(NULL AS varchar)) AS t(event_id) WHERE FALSE`;

/** Per source: raw distinct ids, curated rows, their differences with examples, curated fingerprint. */
export function lakeQualitySql(catalog: Catalog, window: Window, sources: readonly Source[]): string {
  const partitions = hourPartitions(window);
  const ctes: string[] = [];
  const selects: string[] = [];
  for (const source of sources) {
    const layerIds = (layer: 'raw' | 'curated', distinct: boolean) => {
      const table = catalog.get(tableName(layer, source));
      if (!table) return EMPTY_IDS;
      return `SELECT ${distinct ? 'DISTINCT ' : ''}${ident(EVENT_ID)} AS event_id FROM ${ident(table.name)} WHERE ${partitionFilter(table, partitions)} AND ${inWindow(layer, window.from, window.to)}`;
    };
    const r = `r_${source}`;
    const c = `c_${source}`;
    ctes.push(`${r} AS (${layerIds('raw', true)})`, `${c} AS (${layerIds('curated', false)})`);
    const diff = (a: string, b: string) => `(SELECT event_id FROM ${a} EXCEPT SELECT event_id FROM ${b})`;
    const sample = (a: string, b: string) => `(SELECT array_join(slice(array_sort(array_agg(event_id)), 1, 3), ', ') FROM ${diff(a, b)})`;
    selects.push(
      `SELECT ${sqlString(source)} AS source, (SELECT count(*) FROM ${r}) AS raw, (SELECT count(*) FROM ${c}) AS curated, ` +
        `(SELECT count(DISTINCT event_id) FROM ${c}) AS curated_distinct, ` +
        `(SELECT count(*) FROM ${diff(r, c)}) AS not_curated, ${sample(r, c)} AS not_curated_examples, ` +
        `(SELECT count(*) FROM ${diff(c, r)}) AS not_raw, ${sample(c, r)} AS not_raw_examples, ` +
        `(SELECT ${athenaFingerprint('event_id')} FROM ${c}) AS curated_fingerprint`,
    );
  }
  return `WITH ${ctes.join(',\n')}\n${selects.join('\nUNION ALL\n')}`;
}

/** Rows per source and window (every copy, as landed) over the raw tables that exist. */
export function rawCountsSql(catalog: Catalog, windows: Window[]): string | undefined {
  const partitions = [...new Set(windows.flatMap(hourPartitions))];
  const selects = SOURCES.flatMap((source) => {
    const table = catalog.get(tableName('raw', source));
    if (!table) return [];
    const perWindow = windows.map((w, i) => `count_if(${inWindow('raw', w.from, w.to)}) AS w${i}`);
    return [`SELECT ${sqlString(source)} AS source, ${perWindow.join(', ')} FROM ${ident(table.name)} WHERE ${partitionFilter(table, partitions)}`];
  });
  return selects.length ? selects.join('\nUNION ALL\n') : undefined;
}

// ---- the checks --------------------------------------------------------------------------------

const zeroCounts = (): SourceCounts => Object.fromEntries(SOURCES.map((s) => [s, 0])) as SourceCounts;
const num = (v: Row[string] | undefined): number => (v === null || v === undefined || v === '' ? 0 : Number(v));
const big = (v: Row[string] | undefined): bigint => (v === null || v === undefined || v === '' ? 0n : BigInt(String(v).replace(/\.0*$/, '')));
const list = (v: Row[string] | undefined): string[] => (typeof v === 'string' && v !== '' ? v.split(', ') : []);

function lakeChecks(source: Source, row: Row | undefined, window: Window): QualityCheck {
  const raw = num(row?.raw);
  const curated = num(row?.curated);
  const notCurated = num(row?.not_curated);
  const notRaw = num(row?.not_raw);
  const copies = curated - num(row?.curated_distinct);
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
  const curated = num(lake?.curated);
  const rows = wh?.rows ?? 0;
  const sameIds = big(lake?.curated_fingerprint) === (wh?.fingerprint ?? 0n);
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

export function athenaActivities(deps: AwsDeps): Pick<PipelineActivities, 'checkQuality' | 'countRawWindows'> {
  return {
    /** The window's counts per layer (Athena over the lake, Redshift for the warehouse) and the checks that must hold once it is loaded. */
    async checkQuality(input: { window: TimeWindow }): Promise<QualityResult> {
      const window = parseWindow(input.window);
      const catalog = await catalogTables(deps);
      const inLake = SOURCES.filter((s) => catalog.has(tableName('raw', s)) || catalog.has(tableName('curated', s)));
      // The load creates a source's warehouse table once its curated table is catalogued.
      const loaded = SOURCES.filter((s) => catalog.has(tableName('curated', s)));
      const parts: Record<string, RemoteOperation<unknown, unknown>> = {};
      if (inLake.length) {
        parts.lake = queryOperation(deps, { what: `lake counts for ${window.label}`, purpose: 'quality-lake', sql: lakeQualitySql(catalog, window, inLake) });
      }
      if (loaded.length) {
        parts.warehouse = warehouseQualityOperation(deps, window, loaded.map((s) => ({ source: s, columns: catalog.get(tableName('curated', s))!.columns.map((c) => c.name) })));
      }
      const results = Object.keys(parts).length
        ? ((await runRemoteOperation(deps, allOperations(`quality checks of ${window.label}`, parts))) as { lake?: Row[]; warehouse?: Map<Source, WarehouseQuality> })
        : {};
      const counts = { raw: zeroCounts(), curated: zeroCounts(), warehouse: zeroCounts() };
      const checks: QualityCheck[] = [];
      for (const source of SOURCES) {
        const lake = results.lake?.find((r) => r.source === source);
        const wh = results.warehouse?.get(source);
        counts.raw[source] = num(lake?.raw);
        counts.curated[source] = num(lake?.curated);
        counts.warehouse[source] = wh?.rows ?? 0;
        checks.push(lakeChecks(source, lake, window), ...warehouseChecks(source, lake, wh, window));
      }
      return { passed: checks.every((c) => c.passed), checks, counts };
    },

    /** Raw rows (every copy, as landed) per source for each window, in the order given. */
    async countRawWindows(input: { windows: TimeWindow[] }): Promise<SourceCounts[]> {
      const windows = input.windows.map(parseWindow);
      const result = windows.map(zeroCounts);
      if (windows.length === 0) return result;
      const sql = rawCountsSql(await catalogTables(deps), windows);
      if (sql === undefined) return result;
      const rows = await runRemoteOperation(deps, queryOperation(deps, { what: `raw counts of ${windows.length} window(s)`, purpose: 'raw-counts', sql }));
      for (const row of rows) {
        const source = row.source as Source;
        if (!SOURCES.includes(source)) continue;
        windows.forEach((_, i) => {
          result[i]![source] = num(row[`w${i}`]);
        });
      }
      return result;
    },
  };
}
