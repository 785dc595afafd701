// Athena on the aws target: queries over the Glue Data Catalog's lake tables (raw_<source>, crawled;
// <source>, the curated Iceberg tables) in Athena's Trino dialect, and the raw counts of late-data
// detection. The window quality checks build on this module (./quality).
import {
  GetQueryExecutionCommand,
  StartQueryExecutionCommand,
  StopQueryExecutionCommand,
  paginateGetQueryResults,
  type QueryExecution,
} from '@aws-sdk/client-athena';
import { ApplicationFailure } from '@temporalio/common';
import { SOURCES, type Source } from '../../schemas';
import { EVENT_TIME, hourPartitions, parseWindow, zeroCounts, type Window } from '../lake';
import { ident, rowNumber, sqlString, timestampLiteral, type Row } from '../sql';
import type { PipelineActivities, SourceCounts, TimeWindow } from '../types';
import type { AwsDeps } from './clients';
import { awsCall } from './errors';
import { tableName, catalogTables, snapshotId, type Catalog, type CatalogTable } from './glue';
import { idempotencyToken, runRemoteOperation, type RemoteOperation } from './operation';

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

function stopQuery(deps: AwsDeps, id: string): Promise<unknown> {
  return awsCall(`athena:StopQueryExecution on query ${id}`, () => deps.clients.athena.send(new StopQueryExecutionCommand({ QueryExecutionId: id })));
}

/** Every row of a finished query, by column name; NULL is null. */
export async function queryRows(deps: AwsDeps, id: string): Promise<Row[]> {
  const rows: Row[] = [];
  let names: string[] | undefined;
  await awsCall(`athena:GetQueryResults on query ${id}`, async () => {
    for await (const page of paginateGetQueryResults({ client: deps.clients.athena }, { QueryExecutionId: id, MaxResults: 1000 })) {
      // A SELECT's first row on the first page is the header.
      const skipHeader = names === undefined;
      names ??= (page.ResultSet?.ResultSetMetadata?.ColumnInfo ?? []).map((c) => c.Name ?? '');
      for (const [i, r] of (page.ResultSet?.Rows ?? []).entries()) {
        if (skipHeader && i === 0) continue;
        rows.push(Object.fromEntries(names.map((name, j) => [name, r.Data?.[j]?.VarCharValue ?? null])));
      }
    }
  });
  return rows;
}

/**
 * One Athena query as a remote operation; a failed query fails for good with its
 * StateChangeReason. `token` is its ClientRequestToken: an activity's idempotencyToken makes a
 * retried start return the query already started, never a second one.
 */
export function queryOperation(deps: AwsDeps, q: { what: string; sql: string; token: string }): RemoteOperation<string, Row[]> {
  return {
    what: q.what,
    start: () => startQuery(deps, q.sql, q.token),
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

/** Restricts a scan to the window's `date=…/hour=…` partitions, whatever type the crawler gave them. */
export function partitionFilter(table: CatalogTable, partitions: string[]): string {
  const keys = new Map(table.partitionKeys.map((k) => [k.name, k.type]));
  if (!keys.has('date') || !keys.has('hour')) return 'TRUE';
  const value = (key: string, v: string) => (keys.get(key) === 'string' || keys.get(key)?.startsWith('varchar') ? sqlString(v) : String(Number(v)));
  const terms = partitions.map((p) => {
    const [, date = '', hour = ''] = /^date=([^/]+)\/hour=(.+)$/.exec(p) ?? [];
    return `("date" = ${value('date', date)} AND "hour" = ${value('hour', hour)})`;
  });
  return terms.length ? `(${terms.join(' OR ')})` : 'FALSE';
}

/**
 * A curated Iceberg table in a FROM clause: `"<database>"."<source>"`, as of the snapshot when one
 * is given (Athena engine 3's version travel, `FOR VERSION AS OF <snapshot id>`).
 */
export function curatedFrom(deps: AwsDeps, table: CatalogTable, source: Source, snapshot?: string): string {
  const name = `${ident(deps.aws.glue.database)}.${ident(table.name)}`;
  return snapshot === undefined ? name : `${name} FOR VERSION AS OF ${snapshotId(source, snapshot)}`;
}

/** Raw holds event_time as sent (ISO text); curated as a timestamp. */
function timeOf(layer: 'raw' | 'curated'): string {
  return layer === 'raw' ? `from_iso8601_timestamp(${ident(EVENT_TIME)})` : ident(EVENT_TIME);
}

/** The row's event time lies in [from, to), whichever way the layer holds it. */
export function inWindow(layer: 'raw' | 'curated', from: string, to: string): string {
  const bound = (iso: string) => (layer === 'raw' ? `from_iso8601_timestamp(${sqlString(iso)})` : timestampLiteral(iso));
  return `${timeOf(layer)} >= ${bound(from)} AND ${timeOf(layer)} < ${bound(to)}`;
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

export function athenaActivities(deps: AwsDeps): Pick<PipelineActivities, 'countRawWindows'> {
  return {
    /** Raw rows (every copy, as landed) per source for each window, in the order given. */
    async countRawWindows(input: { windows: TimeWindow[] }): Promise<SourceCounts[]> {
      const windows = input.windows.map(parseWindow);
      const result = windows.map(zeroCounts);
      if (windows.length === 0) return result;
      const sql = rawCountsSql(await catalogTables(deps), windows);
      if (sql === undefined) return result;
      const what = `raw counts of ${windows.length} window(s)`;
      const rows = await runRemoteOperation(deps, queryOperation(deps, { what, sql, token: idempotencyToken('raw-counts', sql) }));
      for (const row of rows) {
        const source = row.source as Source;
        if (!SOURCES.includes(source)) continue;
        windows.forEach((_, i) => {
          result[i]![source] = rowNumber(row[`w${i}`]);
        });
      }
      return result;
    },
  };
}
