// Redshift through the Data API on the aws target: the warehouse load of a curated window and the
// warehouse side of the quality checks. A load is, per source, one BatchExecuteStatement (one
// transaction): COPY the window's curated hour partitions (Parquet) into a temp staging table,
// delete the window's rows from the target, insert the staged rows of the window. Running it twice
// gives the same rows. Serverless (workgroup) or provisioned (cluster + secret or db user) per config.
import {
  BatchExecuteStatementCommand,
  CancelStatementCommand,
  DescribeStatementCommand,
  ExecuteStatementCommand,
  GetStatementResultCommand,
  type DescribeStatementCommandOutput,
  type Field,
  type GetStatementResultCommandOutput,
} from '@aws-sdk/client-redshift-data';
import { ApplicationFailure } from '@temporalio/common';
import { SOURCES, type Source } from '../../schemas';
import { EVENT_ID, EVENT_TIME, hourPartitions, parseWindow, type Window } from '../lake';
import { bounds, rulesOf, type ColumnRule } from '../../schemas/column-rules';
import type { LoadResult, PipelineActivities, SourceCounts, TimeWindow } from '../types';
import { catalogTables, sqlString, tableName, timestampLiteral, type CatalogColumn } from './athena';
import type { AwsDeps } from './clients';
import { awsCall } from './errors';
import { allOperations, idempotencyToken, runRemoteOperation, type RemoteOperation } from './operation';
import { hasObjects, s3Uri } from './s3';

/** A result row by column name, as both the Data API and Athena return them. */
export type Row = Record<string, string | number | boolean | null>;

/** BatchExecuteStatement takes at most this many statements. */
const MAX_BATCH = 40;

const ident = (name: string): string => `"${name.replaceAll('"', '""')}"`;

// ---- the Data API, one call each -----------------------------------------------------------------

/** Where statements run: Serverless workgroup, or a provisioned cluster with a secret or IAM db user. */
function target(deps: AwsDeps) {
  const r = deps.aws.redshift;
  return {
    Database: r.database,
    ...(r.workgroup !== undefined
      ? { WorkgroupName: r.workgroup }
      : { ClusterIdentifier: r.clusterId, ...(r.secretArn !== undefined ? { SecretArn: r.secretArn } : { DbUser: r.dbUser }) }),
  };
}

function where(deps: AwsDeps): string {
  const r = deps.aws.redshift;
  return r.workgroup !== undefined ? `workgroup ${r.workgroup}` : `cluster ${r.clusterId}`;
}

function executeStatement(deps: AwsDeps, sql: string, token: string): Promise<string> {
  return awsCall(`redshift-data:ExecuteStatement on ${where(deps)}`, async () => {
    const out = await deps.clients.redshiftData.send(new ExecuteStatementCommand({ ...target(deps), Sql: sql, ClientToken: token }));
    if (!out.Id) throw new Error('ExecuteStatement returned no Id');
    return out.Id;
  });
}

function batchExecuteStatement(deps: AwsDeps, sqls: string[], token: string): Promise<string> {
  return awsCall(`redshift-data:BatchExecuteStatement on ${where(deps)}`, async () => {
    const out = await deps.clients.redshiftData.send(new BatchExecuteStatementCommand({ ...target(deps), Sqls: sqls, ClientToken: token }));
    if (!out.Id) throw new Error('BatchExecuteStatement returned no Id');
    return out.Id;
  });
}

function describeStatement(deps: AwsDeps, id: string): Promise<DescribeStatementCommandOutput> {
  return awsCall(`redshift-data:DescribeStatement on statement ${id}`, () => deps.clients.redshiftData.send(new DescribeStatementCommand({ Id: id })));
}

function getStatementResultPage(deps: AwsDeps, id: string, nextToken: string | undefined): Promise<GetStatementResultCommandOutput> {
  return awsCall(`redshift-data:GetStatementResult on statement ${id}`, () =>
    deps.clients.redshiftData.send(new GetStatementResultCommand({ Id: id, ...(nextToken !== undefined && { NextToken: nextToken }) })),
  );
}

function cancelStatement(deps: AwsDeps, id: string): Promise<unknown> {
  return awsCall(`redshift-data:CancelStatement on statement ${id}`, () => deps.clients.redshiftData.send(new CancelStatementCommand({ Id: id })));
}

function fieldValue(f: Field): Row[string] {
  if (f.isNull) return null;
  return f.stringValue ?? f.longValue ?? f.doubleValue ?? f.booleanValue ?? null;
}

/** Every row of a statement's (or sub-statement's, `<id>:<n>`) result, by column name. */
export async function statementRows(deps: AwsDeps, id: string): Promise<Row[]> {
  const rows: Row[] = [];
  let token: string | undefined;
  do {
    const page = await getStatementResultPage(deps, id, token);
    const names = (page.ColumnMetadata ?? []).map((c) => c.name ?? c.label ?? '');
    for (const record of page.Records ?? []) rows.push(Object.fromEntries(record.map((f, i) => [names[i] ?? String(i), fieldValue(f)])));
    token = page.NextToken;
  } while (token);
  return rows;
}

/**
 * SQL statements as one remote operation: a single one through ExecuteStatement, several through
 * BatchExecuteStatement (one transaction). Returns the rows of the statements listed in `results`
 * (indexes into `sqls`). A failed statement fails for good with its Error and the failing part.
 */
export function statementOperation(
  deps: AwsDeps,
  s: { what: string; purpose: string; sqls: string[]; results: number[] },
): RemoteOperation<string, Row[][]> {
  if (s.sqls.length > MAX_BATCH) {
    throw ApplicationFailure.nonRetryable(`${s.what} needs ${s.sqls.length} statements, more than the ${MAX_BATCH} a Data API batch takes; use a shorter window`, 'InvalidInput');
  }
  const joined = s.sqls.join(';\n');
  return {
    what: s.what,
    // The token makes a retried start return the statement already started, never a second one.
    start: () =>
      s.sqls.length === 1
        ? executeStatement(deps, s.sqls[0]!, idempotencyToken(s.purpose, joined))
        : batchExecuteStatement(deps, s.sqls, idempotencyToken(s.purpose, joined)),
    async poll(id) {
      const d = await describeStatement(deps, id);
      if (d.Status === 'FINISHED') {
        const rows: Row[][] = [];
        for (const i of s.results) rows.push(await statementRows(deps, s.sqls.length === 1 ? id : `${id}:${i + 1}`));
        return { done: true, result: rows };
      }
      if (d.Status === 'FAILED' || d.Status === 'ABORTED') throw statementFailure(s.what, id, d);
      return { done: false, progress: { status: d.Status } };
    },
    cancel: async (id) => {
      await cancelStatement(deps, id);
    },
  };
}

function statementFailure(what: string, id: string, d: DescribeStatementCommandOutput): ApplicationFailure {
  const subs = d.SubStatements ?? [];
  const failedAt = subs.findIndex((sub) => sub.Status === 'FAILED' || sub.Error);
  const failed = failedAt >= 0 ? subs[failedAt] : undefined;
  const error = d.Error ?? failed?.Error ?? 'no error given';
  const part = failed ? ` at statement ${failedAt + 1} of ${subs.length}: ${(failed.QueryString ?? '').slice(0, 300)}` : '';
  const fix =
    d.Status === 'ABORTED'
      ? 'it was cancelled outside this workflow; re-run the window'
      : 'the transaction was rolled back, the warehouse is unchanged; fix what the error names (table, column, COPY role or S3 access), then re-run the window';
  return ApplicationFailure.create({
    type: d.Status === 'ABORTED' ? 'Redshift.StatementAborted' : 'Redshift.StatementFailed',
    message: `${what}: Redshift statement ${id} ${d.Status}: ${error}${part} — ${fix}`,
    nonRetryable: true,
    details: [{ statementId: id, status: d.Status, error, failedStatement: failed && { index: failedAt + 1, sql: failed.QueryString, error: failed.Error } }],
  });
}

// ---- the load ----------------------------------------------------------------------------------

/** Redshift type of a curated column as the Glue crawler catalogued it. */
export function redshiftType(column: CatalogColumn): string {
  const t = column.type;
  const simple: Record<string, string> = {
    string: 'VARCHAR(65535)',
    double: 'DOUBLE PRECISION',
    float: 'REAL',
    bigint: 'BIGINT',
    int: 'INTEGER',
    integer: 'INTEGER',
    smallint: 'SMALLINT',
    tinyint: 'SMALLINT',
    boolean: 'BOOLEAN',
    // Parquet timestamps are UTC instants; Redshift keeps them as UTC wall time.
    timestamp: 'TIMESTAMP',
    date: 'DATE',
  };
  if (simple[t]) return simple[t];
  const sized = /^(decimal|varchar|char)\((\d+(?:,\s*\d+)?)\)$/.exec(t);
  if (sized) return `${sized[1]!.toUpperCase()}(${sized[2]!.replace(/\s/g, '')})`;
  throw ApplicationFailure.nonRetryable(
    `curated column ${column.name} has type ${t}, which the warehouse load cannot map to Redshift; keep curated columns scalar (schemas/v1 and spark/jobs/curate.py)`,
    'InvalidInput',
  );
}

const tsLiteral = (iso: string): string => timestampLiteral(iso);
const windowPredicate = (window: Window): string => `${ident(EVENT_TIME)} >= ${tsLiteral(window.from)} AND ${ident(EVENT_TIME)} < ${tsLiteral(window.to)}`;

/**
 * The statements of one source's load, in one transaction. The DDL comes from the curated table
 * the crawler made of the curated files: one column definition (the files, written by curate.py
 * from schemas/v1), in file order, because a Parquet COPY maps columns by position.
 */
export function loadStatements(deps: AwsDeps, source: Source, columns: CatalogColumn[], partitions: string[], window: Window): string[] {
  const { schema, copyRoleArn } = deps.aws.redshift;
  const table = `${ident(schema)}.${ident(source)}`;
  const loadedWindows = `${ident(schema)}.loaded_windows`;
  const stage = ident(`stage_${source}`);
  const ddl = columns.map((c) => `${ident(c.name)} ${redshiftType(c)}`).join(', ');
  const names = columns.map((c) => ident(c.name)).join(', ');
  const inWindow = windowPredicate(window);
  const windowKey = `window_from = ${tsLiteral(window.from)} AND window_to = ${tsLiteral(window.to)} AND source = ${sqlString(source)}`;
  return [
    `CREATE TABLE IF NOT EXISTS ${table} (${ddl})`,
    `CREATE TEMP TABLE ${stage} (${ddl})`,
    ...partitions.map(
      (p) => `COPY ${stage} FROM ${sqlString(s3Uri(deps.aws.buckets.curated, `curated/${source}/${p}/`))} IAM_ROLE ${sqlString(copyRoleArn)} FORMAT AS PARQUET`,
    ),
    `DELETE FROM ${table} WHERE ${inWindow}`,
    // Curated hour partitions also hold the neighbouring windows' rows: only the window's are loaded.
    `INSERT INTO ${table} (${names}) SELECT ${names} FROM ${stage} WHERE ${inWindow}`,
    `CREATE TABLE IF NOT EXISTS ${loadedWindows} (window_from TIMESTAMP NOT NULL, window_to TIMESTAMP NOT NULL, source VARCHAR(32) NOT NULL, row_count BIGINT NOT NULL, loaded_at TIMESTAMP NOT NULL)`,
    `DELETE FROM ${loadedWindows} WHERE ${windowKey}`,
    `INSERT INTO ${loadedWindows} SELECT ${tsLiteral(window.from)}, ${tsLiteral(window.to)}, ${sqlString(source)}, count(*), GETDATE() FROM ${table} WHERE ${inWindow}`,
    `SELECT count(*) AS row_count FROM ${table} WHERE ${inWindow}`,
  ];
}

/** Whether any object lies under the prefix: COPY fails on a prefix that matches nothing. */
// ---- the warehouse side of the quality checks ------------------------------------------------------

export interface WarehouseQuality {
  rows: number;
  distinctIds: number;
  /** Same recipe as the lake's (athena.ts): sum of the first 32 bits of each event_id's MD5. */
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
  const n = (v: Row[string] | undefined) => (v === null || v === undefined ? 0 : Number(v));
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
      const fp = row?.fingerprint;
      return {
        rows: n(row?.row_count),
        distinctIds: n(row?.distinct_ids),
        fingerprint: fp === null || fp === undefined ? 0n : BigInt(String(fp).replace(/\.0*$/, '')),
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
): RemoteOperation<string, Map<Source, WarehouseQuality>> {
  const queries = sources.map((s) => ({ source: s.source, ...warehouseQualitySql(deps, s.source, s.columns, window) }));
  const op = statementOperation(deps, {
    what: `warehouse checks of ${window.label}`,
    purpose: 'quality-warehouse',
    sqls: queries.map((q) => q.sql),
    results: queries.map((_, i) => i),
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

export function redshiftActivities(deps: AwsDeps): Pick<PipelineActivities, 'loadWarehouse'> {
  return {
    /**
     * Makes the warehouse hold exactly the curated rows of the window: per source one transaction
     * (COPY to staging, delete the window, insert), all sources at once. A retry joins the
     * statements already running (ClientToken); a re-run replaces the window again.
     */
    async loadWarehouse(input: { window: TimeWindow }): Promise<LoadResult> {
      const window = parseWindow(input.window);
      const catalog = await catalogTables(deps);
      const partitions = hourPartitions(window);
      const parts: Record<string, RemoteOperation<string, Row[][]>> = {};
      for (const source of SOURCES) {
        const landed: string[] = [];
        for (const p of partitions) if (await hasObjects(deps, deps.aws.buckets.curated, `curated/${source}/${p}/`)) landed.push(p);
        const curated = catalog.get(tableName('curated', source));
        if (!curated) {
          if (landed.length === 0) continue; // nothing curated for this source yet: nothing to load
          throw ApplicationFailure.nonRetryable(
            `curated files of ${source} for ${window.label} exist but the Glue database ${deps.aws.glue.database} has no table ${tableName('curated', source)}: run the curated crawler (${deps.aws.glue.curatedCrawler}) first`,
            'Aws.CuratedTableMissing',
          );
        }
        const sqls = loadStatements(deps, source, curated.columns, landed, window);
        parts[source] = statementOperation(deps, { what: `warehouse load of ${source} for ${window.label}`, purpose: `load-${source}`, sqls, results: [sqls.length - 1] });
      }
      const rows = Object.fromEntries(SOURCES.map((s) => [s, 0])) as SourceCounts;
      if (Object.keys(parts).length === 0) return { rows };
      const results = await runRemoteOperation(deps, allOperations(`warehouse load of ${window.label}`, parts));
      for (const [source, result] of Object.entries(results)) rows[source as Source] = Number(result[0]?.[0]?.row_count ?? 0);
      return { rows };
    },
  };
}
