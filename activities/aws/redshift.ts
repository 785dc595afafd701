// Redshift through the Data API on the aws target: running statements, and the warehouse load of a
// curated window (the warehouse side of the quality checks is in ./quality). Redshift reads the
// curated Iceberg tables through an external schema on the Glue database (made once, by the load
// itself, if missing). A load is then, per source, one BatchExecuteStatement (one transaction):
// delete the window's rows from the target, insert the window's rows of the curated table. Running
// it twice gives the same rows. Serverless (workgroup) or provisioned (cluster + secret or db user)
// per config.
import {
  BatchExecuteStatementCommand,
  CancelStatementCommand,
  DescribeStatementCommand,
  ExecuteStatementCommand,
  paginateGetStatementResult,
  type DescribeStatementCommandOutput,
  type Field,
} from '@aws-sdk/client-redshift-data';
import { ApplicationFailure } from '@temporalio/common';
import { SOURCES, type Source } from '../../schemas';
import { EVENT_TIME, parseWindow, zeroCounts, type Window } from '../lake';
import { ident, sqlString, timestampLiteral, type Row } from '../sql';
import type { CuratedRead, LoadResult, PipelineActivities } from '../types';
import type { AwsDeps } from './clients';
import { awsCall } from './errors';
import { catalogTables, curatedTable, curatedTableMissing, tableName, type CatalogColumn } from './glue';
import { allOperations, idempotencyToken, runRemoteOperation, sequenceOperations, type RemoteOperation } from './operation';

/** BatchExecuteStatement takes at most this many statements. */
const MAX_BATCH = 40;

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
  await awsCall(`redshift-data:GetStatementResult on statement ${id}`, async () => {
    for await (const page of paginateGetStatementResult({ client: deps.clients.redshiftData }, { Id: id })) {
      const names = (page.ColumnMetadata ?? []).map((c) => c.name ?? c.label ?? '');
      for (const record of page.Records ?? []) rows.push(Object.fromEntries(record.map((f, i) => [names[i] ?? String(i), fieldValue(f)])));
    }
  });
  return rows;
}

/**
 * SQL statements as one remote operation: a single one through ExecuteStatement, several through
 * BatchExecuteStatement (one transaction). Returns the rows of the statements listed in `results`
 * (indexes into `sqls`). A failed statement fails for good with its Error and the failing part.
 * `token` gives the ClientToken for the statements' text: an activity's idempotencyToken makes a
 * retried start return the statement already started, never a second one.
 */
export function statementOperation(
  deps: AwsDeps,
  s: { what: string; sqls: string[]; results: number[]; token: (joined: string) => string },
): RemoteOperation<string, Row[][]> {
  if (s.sqls.length > MAX_BATCH) {
    throw ApplicationFailure.nonRetryable(`${s.what} needs ${s.sqls.length} statements, more than the ${MAX_BATCH} a Data API batch takes; use a shorter window`, 'InvalidInput');
  }
  const joined = s.sqls.join(';\n');
  return {
    what: s.what,
    start: () => (s.sqls.length === 1 ? executeStatement(deps, s.sqls[0]!, s.token(joined)) : batchExecuteStatement(deps, s.sqls, s.token(joined))),
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
      : 'the transaction was rolled back, the warehouse is unchanged; fix what the error names (table, column, external schema, Glue or S3 access of the COPY role), then re-run the window';
  return ApplicationFailure.create({
    type: d.Status === 'ABORTED' ? 'Redshift.StatementAborted' : 'Redshift.StatementFailed',
    message: `${what}: Redshift statement ${id} ${d.Status}: ${error}${part} — ${fix}`,
    nonRetryable: true,
    details: [{ statementId: id, status: d.Status, error, failedStatement: failed && { index: failedAt + 1, sql: failed.QueryString, error: failed.Error } }],
  });
}

// ---- the load ----------------------------------------------------------------------------------

/** Redshift type of a curated column as the Glue catalog lists it (Iceberg's Glue catalog writes Hive type names). */
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
    // Curated timestamps are UTC instants; Redshift keeps them as UTC wall time.
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

/** The window's rows of a warehouse table. */
export const windowPredicate = (window: Window): string =>
  `${ident(EVENT_TIME)} >= ${timestampLiteral(window.from)} AND ${ident(EVENT_TIME)} < ${timestampLiteral(window.to)}`;

/**
 * The Redshift schema through which the load reads the curated Iceberg tables: an external schema
 * on the Glue database, `<glue database>_lake` (apart from the warehouse's own schema, which may
 * share the database's name).
 */
export const lakeSchema = (deps: AwsDeps): string => `${deps.aws.glue.database}_lake`;

/**
 * Makes the external schema if it is missing, with the role Redshift reads the Glue catalog and the
 * curated bucket as (the COPY role of the settings). Its own statement, committed before the loads
 * start: external DDL is kept out of their transactions.
 */
export function lakeSchemaStatement(deps: AwsDeps): string {
  return `CREATE EXTERNAL SCHEMA IF NOT EXISTS ${ident(lakeSchema(deps))} FROM DATA CATALOG DATABASE ${sqlString(deps.aws.glue.database)} IAM_ROLE ${sqlString(deps.aws.redshift.copyRoleArn)}`;
}

/**
 * The statements of one source's load, in one transaction. The warehouse table takes the curated
 * table's current columns (as the Glue catalog lists them; the INSERT names every column, so the
 * order does not matter). Redshift reads the Iceberg table's current snapshot when the INSERT runs:
 * it cannot read a given snapshot, so the load holds the window as of the latest commit.
 */
export function loadStatements(deps: AwsDeps, source: Source, columns: CatalogColumn[], window: Window): string[] {
  const { schema } = deps.aws.redshift;
  const table = `${ident(schema)}.${ident(source)}`;
  const curated = `${ident(lakeSchema(deps))}.${ident(tableName('curated', source))}`;
  const loadedWindows = `${ident(schema)}.loaded_windows`;
  const ddl = columns.map((c) => `${ident(c.name)} ${redshiftType(c)}`).join(', ');
  const names = columns.map((c) => ident(c.name)).join(', ');
  const inWindow = windowPredicate(window);
  const windowKey = `window_from = ${timestampLiteral(window.from)} AND window_to = ${timestampLiteral(window.to)} AND source = ${sqlString(source)}`;
  return [
    `CREATE TABLE IF NOT EXISTS ${table} (${ddl})`,
    `DELETE FROM ${table} WHERE ${inWindow}`,
    // The predicate on event_time prunes the table's hours(event_time) partitions to the window's.
    `INSERT INTO ${table} (${names}) SELECT ${names} FROM ${curated} WHERE ${inWindow}`,
    `CREATE TABLE IF NOT EXISTS ${loadedWindows} (window_from TIMESTAMP NOT NULL, window_to TIMESTAMP NOT NULL, source VARCHAR(32) NOT NULL, row_count BIGINT NOT NULL, loaded_at TIMESTAMP NOT NULL)`,
    `DELETE FROM ${loadedWindows} WHERE ${windowKey}`,
    `INSERT INTO ${loadedWindows} SELECT ${timestampLiteral(window.from)}, ${timestampLiteral(window.to)}, ${sqlString(source)}, count(*), GETDATE() FROM ${table} WHERE ${inWindow}`,
    `SELECT count(*) AS row_count FROM ${table} WHERE ${inWindow}`,
  ];
}

export function redshiftActivities(deps: AwsDeps): Pick<PipelineActivities, 'loadWarehouse'> {
  return {
    /**
     * Makes the warehouse hold exactly the curated rows of the window: per source with a curated
     * table one transaction (delete the window, insert it from the Iceberg table), all sources at
     * once, after the external schema exists. A retry joins the statements already running
     * (ClientToken); a re-run replaces the window again. `snapshots` (the curate's commits) cannot
     * be pinned on Redshift: the load reads each table's current snapshot (docs/aws.md).
     */
    async loadWarehouse(input: CuratedRead): Promise<LoadResult> {
      const window = parseWindow(input.window);
      const catalog = await catalogTables(deps);
      const parts: Record<string, RemoteOperation<string, Row[][]>> = {};
      for (const source of SOURCES) {
        const curated = curatedTable(deps, catalog, source);
        const snapshot = input.snapshots?.[source];
        if (!curated) {
          if (snapshot === undefined) continue; // nothing curated for this source yet: nothing to load
          throw curatedTableMissing(deps, window.label, source, snapshot);
        }
        const sqls = loadStatements(deps, source, curated.columns, window);
        parts[source] = statementOperation(deps, {
          what: `warehouse load of ${source} for ${window.label}`,
          sqls,
          results: [sqls.length - 1],
          token: (joined) => idempotencyToken(`load-${source}`, joined),
        });
      }
      const rows = zeroCounts();
      if (Object.keys(parts).length === 0) return { rows };
      const schemaSql = lakeSchemaStatement(deps);
      const prepare = statementOperation(deps, {
        what: `external schema ${lakeSchema(deps)} for the warehouse load of ${window.label}`,
        sqls: [schemaSql],
        results: [],
        token: (joined) => idempotencyToken('lake-schema', joined),
      });
      const loads = allOperations(`warehouse load of ${window.label}`, parts);
      const results = await runRemoteOperation(deps, sequenceOperations(`warehouse load of ${window.label}`, prepare, () => loads));
      for (const [source, result] of Object.entries(results)) rows[source as Source] = Number(result[0]?.[0]?.row_count ?? 0);
      return { rows };
    },
  };
}
