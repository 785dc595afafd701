// smartcity report on the aws target, with aws-sdk-client-mock clients: rows per source from
// Athena, quarantine from the Parquet footers in S3 (real Parquet files, served by ranged reads),
// the warehouse from Redshift, the catalog from Glue; rendered in the terminal, JSON and HTML forms.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { GetQueryExecutionCommand, GetQueryResultsCommand, StartQueryExecutionCommand } from '@aws-sdk/client-athena';
import { GetPartitionsCommand, GetTablesCommand } from '@aws-sdk/client-glue';
import { BatchExecuteStatementCommand, DescribeStatementCommand, ExecuteStatementCommand, GetStatementResultCommand } from '@aws-sdk/client-redshift-data';
import { GetObjectCommand, ListObjectsV2Command, type GetObjectCommandInput, type GetObjectCommandOutput, type ListObjectsV2CommandInput } from '@aws-sdk/client-s3';
import { renderHtml } from '../../report/html';
import { gatherReport } from '../../report/model';
import { renderTerminal } from '../../report/terminal';
import { mockedAwsDeps, type AwsMocks } from '../helpers/aws-mock';
import { quarantineParquet } from '../helpers/parquet';

/** Nothing listens here: the report carries on without Temporal. */
const NO_TEMPORAL = { SMARTCITY_TEMPORAL_ADDRESS: '127.0.0.1:1' };

function body(bytes: Uint8Array): GetObjectCommandOutput['Body'] {
  return { transformToByteArray: () => Promise.resolve(bytes), transformToString: () => Promise.resolve(Buffer.from(bytes).toString()) } as unknown as GetObjectCommandOutput['Body'];
}

const columns = (names: string[]) => ({ Columns: names.map((Name) => ({ Name, Type: 'string' })) });

async function stubAwsState(mocks: AwsMocks): Promise<void> {
  mocks.glue.on(GetTablesCommand).resolves({
    TableList: [
      { Name: 'raw_gps', StorageDescriptor: columns(['event_id', 'event_time']), UpdateTime: new Date('2026-03-02T13:07:00Z') },
      // The curated Iceberg table, as Iceberg's Glue catalog registers it.
      { Name: 'gps', Parameters: { table_type: 'ICEBERG' }, StorageDescriptor: columns(['event_id', 'event_time', 'lat']), UpdateTime: new Date('2026-03-02T13:09:00Z') },
      { Name: 'raw_vehicle', StorageDescriptor: columns(['event_id']), UpdateTime: new Date('2026-03-02T13:07:00Z') },
    ],
  });
  mocks.glue.on(GetPartitionsCommand).resolves({ Partitions: [{ Values: ['2026-03-02', '12'] }, { Values: ['2026-03-02', '13'] }] });

  mocks.athena.on(StartQueryExecutionCommand).resolves({ QueryExecutionId: 'q-counts' });
  mocks.athena.on(GetQueryExecutionCommand).resolves({ QueryExecution: { Status: { State: 'SUCCEEDED' } } });
  const cells = (values: string[]) => ({ Data: values.map((VarCharValue) => ({ VarCharValue })) });
  mocks.athena.on(GetQueryResultsCommand).resolves({
    ResultSet: {
      ResultSetMetadata: { ColumnInfo: [{ Name: 'layer', Type: 'varchar' }, { Name: 'source', Type: 'varchar' }, { Name: 'row_count', Type: 'bigint' }] },
      Rows: [cells(['layer', 'source', 'row_count']), cells(['raw', 'gps', '120']), cells(['raw', 'vehicle', '40']), cells(['curated', 'gps', '118'])],
    },
  });

  // gps quarantine: two data files of 3 and 2 rows beside Spark's marker and work files; weather: one of 1 row.
  const files: Record<string, Uint8Array> = {
    'quarantine/gps/date=2026-03-02/batch_id=4/part-00000-a.c000.snappy.parquet': await quarantineParquet(3),
    'quarantine/gps/date=2026-03-02/batch_id=9/part-00000-b.c000.snappy.parquet': await quarantineParquet(2),
    'quarantine/weather/date=2026-03-02/batch_id=9/part-00000-c.c000.snappy.parquet': await quarantineParquet(1),
  };
  const listed = { ...files, 'quarantine/gps/_SUCCESS': new Uint8Array(), 'quarantine/gps/_temporary/0/part-00000-x.parquet': new Uint8Array(9) };
  mocks.s3.on(ListObjectsV2Command).callsFake((input: ListObjectsV2CommandInput) => ({
    Contents: Object.entries(listed)
      .filter(([key]) => input.Bucket === 'sc-quarantine' && key.startsWith(input.Prefix ?? ''))
      .map(([Key, bytes]) => ({ Key, Size: bytes.length })),
  }));
  mocks.s3.on(GetObjectCommand).callsFake((input: GetObjectCommandInput) => {
    const [, start = '0', end = '0'] = /^bytes=(\d+)-(\d+)$/.exec(input.Range ?? '') ?? [];
    return { Body: body(files[input.Key!]!.slice(Number(start), Number(end) + 1)) };
  });

  // Redshift: the tables that exist, then the per-source counts and the loaded windows.
  mocks.redshiftData.on(ExecuteStatementCommand).resolves({ Id: 'tables' });
  mocks.redshiftData.on(BatchExecuteStatementCommand).resolves({ Id: 'counts' });
  mocks.redshiftData.on(DescribeStatementCommand).resolves({ Status: 'FINISHED' });
  const text = (v: string) => ({ stringValue: v });
  mocks.redshiftData.on(GetStatementResultCommand, { Id: 'tables' }).resolves({ ColumnMetadata: [{ name: 'table_name' }], Records: [[text('gps')], [text('loaded_windows')]] });
  mocks.redshiftData.on(GetStatementResultCommand, { Id: 'counts:1' }).resolves({ ColumnMetadata: [{ name: 'source' }, { name: 'row_count' }], Records: [[text('gps'), { longValue: 118 }]] });
  mocks.redshiftData.on(GetStatementResultCommand, { Id: 'counts:2' }).resolves({
    ColumnMetadata: ['window_from', 'window_to', 'source', 'row_count', 'loaded_at'].map((name) => ({ name })),
    Records: [[text('2026-03-02 12:55:00'), text('2026-03-02 13:00:00'), text('gps'), { longValue: 118 }, text('2026-03-02 13:10:04.25')]],
  });
}

describe('smartcity report on the aws target', () => {
  test('rows per source from Athena, quarantine from the Parquet footers, the warehouse and loaded windows from Redshift, the catalog from Glue', { timeout: 60_000 }, async () => {
    const { deps, mocks } = mockedAwsDeps(NO_TEMPORAL);
    await stubAwsState(mocks);
    const report = await gatherReport(deps.config, { aws: { clients: deps.clients, pollIntervalMs: 2 }, series: true });
    assert.equal(report.target, 'aws');
    assert.deepEqual(report.sources.gps, { raw: 120, quarantine: 5, curated: 118, warehouse: 118 });
    assert.deepEqual(report.sources.vehicle, { raw: 40, quarantine: 0, curated: 0, warehouse: 0 });
    assert.deepEqual(report.sources.weather, { raw: 0, quarantine: 1, curated: 0, warehouse: 0 });
    assert.deepEqual(report.loadedWindows, [
      { from: '2026-03-02T12:55:00.000Z', to: '2026-03-02T13:00:00.000Z', rows: { vehicle: 0, gps: 118, traffic: 0, weather: 0, emergency: 0 }, loadedAt: '2026-03-02T13:10:04.250Z' },
    ]);
    assert.deepEqual(report.windows.map((w) => [w.from, w.status]), [['2026-03-02T12:55:00.000Z', 'loaded']]);
    // The crawled tables. (report/aws.ts still tells layer and source from a `<layer>_` prefix,
    // which the curated Iceberg tables no longer have: their rows are left out here.)
    assert.deepEqual(
      report.catalog.filter((t) => t.layer === 'raw').map((t) => [t.name, t.layer, t.source, t.partitions, t.columns, t.crawledAt]),
      [
        ['raw_gps', 'raw', 'gps', 2, 2, '2026-03-02T13:07:00.000Z'],
        ['raw_vehicle', 'raw', 'vehicle', 2, 1, '2026-03-02T13:07:00.000Z'],
      ],
    );
    assert.deepEqual(report.catalog.map((t) => t.name).sort(), ['gps', 'raw_gps', 'raw_vehicle']);
    // Queries only, from the configured workgroup and database.
    const query = mocks.athena.commandCalls(StartQueryExecutionCommand)[0]!.args[0].input;
    assert.equal(query.WorkGroup, 'primary');
    assert.match(query.QueryString ?? '', /FROM "raw_vehicle"[\s\S]*FROM "raw_gps"[\s\S]*FROM "gps"$/);
    const batch = mocks.redshiftData.commandCalls(BatchExecuteStatementCommand)[0]!.args[0].input.Sqls!;
    assert.match(batch[0]!, /FROM "public"\."gps"$/);
    assert.ok(!batch[0]!.includes('"vehicle"'), 'no count of a warehouse table that does not exist');
    // Only the footers were read, never a whole file.
    assert.ok(mocks.s3.commandCalls(GetObjectCommand).every((c) => /^bytes=\d+-\d+$/.test(c.args[0].input.Range ?? '')));

    const terminal = renderTerminal(report).join('\n');
    assert.match(terminal, /aws target/);
    assert.match(terminal, /gps\s+120\s+5\s+118\s+118/);
    assert.match(terminal, /windows: 1 known, 1 loaded/);
    assert.match(terminal, /catalog: 3 tables, 6 partitions/);
    assert.match(terminal, /note: Temporal is not reachable/);
    const { series: _series, ...json } = report;
    assert.equal((JSON.parse(JSON.stringify(json)) as typeof json).sources.gps.quarantine, 5);
    const html = renderHtml(report);
    assert.match(html, /class="note">the HTML page&#39;s map and charts are drawn from the local target&#39;s lake only/);
  });

  test('before anything landed or was loaded it reports zero rows and says what is missing', async () => {
    const { deps, mocks } = mockedAwsDeps(NO_TEMPORAL);
    mocks.glue.on(GetTablesCommand).resolves({ TableList: [] });
    mocks.s3.on(ListObjectsV2Command).resolves({});
    mocks.redshiftData.on(ExecuteStatementCommand).resolves({ Id: 'tables' });
    mocks.redshiftData.on(DescribeStatementCommand).resolves({ Status: 'FINISHED' });
    mocks.redshiftData.on(GetStatementResultCommand).resolves({ ColumnMetadata: [{ name: 'table_name' }], Records: [] });
    const report = await gatherReport(deps.config, { aws: { clients: deps.clients, pollIntervalMs: 2 } });
    assert.deepEqual(report.sources.gps, { raw: 0, quarantine: 0, curated: 0, warehouse: 0 });
    assert.equal(mocks.athena.commandCalls(StartQueryExecutionCommand).length, 0, 'no query over tables that do not exist');
    assert.equal(mocks.redshiftData.commandCalls(BatchExecuteStatementCommand).length, 0);
    assert.match(report.notes.join('\n'), /holds no catalogued events yet[\s\S]*no warehouse yet: no window has been loaded into dev\.public[\s\S]*no catalog yet: the Glue database smartcity/);
  });
});
