import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import {
  BatchStopJobRunCommand,
  GetCrawlerCommand,
  GetJobRunCommand,
  GetJobRunsCommand,
  GetPartitionsCommand,
  GetTablesCommand,
  StartCrawlerCommand,
  StartJobRunCommand,
} from '@aws-sdk/client-glue';
import { GetLogEventsCommand } from '@aws-sdk/client-cloudwatch-logs';
import { GetObjectCommand, ListObjectsV2Command, type GetObjectCommandOutput } from '@aws-sdk/client-s3';
import { ApplicationFailure, CancelledFailure } from '@temporalio/common';
import { glueActivities } from '../../activities/aws/glue';
import { mockedAwsDeps, runActivity, sdkError, type AwsMocks } from '../helpers/aws-mock';

const WINDOW = { from: '2026-03-02T09:00:00Z', to: '2026-03-02T10:00:00Z' };
const FROM = '2026-03-02T09:00:00.000Z';
const TO = '2026-03-02T10:00:00.000Z';
const SUMMARY_KEY = '_runs/curate/20260302T090000000000Z_20260302T100000000000Z.json';

function body(text: string): GetObjectCommandOutput['Body'] {
  return { transformToString: () => Promise.resolve(text) } as unknown as GetObjectCommandOutput['Body'];
}

const summary = {
  from: FROM,
  to: TO,
  sources: {
    // Snapshot ids are 64-bit: beyond what a JSON number keeps exactly, hence strings.
    vehicle: { rows_read: 10, duplicates_dropped: 2, rows_written: 8, snapshot_id: '9007199254740993' },
    gps: { rows_read: 5, duplicates_dropped: 0, rows_written: 5, snapshot_id: '4312' },
    // A table the curate has not created yet has no snapshot.
    traffic: { rows_read: 0, duplicates_dropped: 0, rows_written: 0, snapshot_id: null },
  },
};

function failureOf(err: unknown): ApplicationFailure {
  assert.ok(err instanceof ApplicationFailure, `expected an ApplicationFailure, got ${String(err)}`);
  return err;
}

describe('curateWindow on Glue', () => {
  function setup() {
    const { deps, mocks } = mockedAwsDeps();
    mocks.glue.on(GetJobRunsCommand).resolves({ JobRuns: [] });
    mocks.glue.on(StartJobRunCommand).resolves({ JobRunId: 'jr_new' });
    mocks.s3.on(GetObjectCommand, { Bucket: 'sc-artifacts', Key: SUMMARY_KEY }).resolves({ Body: body(JSON.stringify(summary)) });
    return { activities: glueActivities(deps), mocks };
  }

  test('starts a run with the window, the layer roots and the Glue catalog, waits, and returns the summary the job wrote with its snapshots', async () => {
    const { activities, mocks } = setup();
    mocks.glue
      .on(GetJobRunCommand)
      .resolvesOnce({ JobRun: { Id: 'jr_new', JobRunState: 'STARTING' } })
      .resolvesOnce({ JobRun: { Id: 'jr_new', JobRunState: 'RUNNING' } })
      .resolves({ JobRun: { Id: 'jr_new', JobRunState: 'SUCCEEDED' } });
    const run = await runActivity(() => activities.curateWindow({ window: WINDOW }));
    assert.deepEqual(run.result, {
      rowsRead: 15,
      duplicatesDropped: 2,
      rowsWritten: { vehicle: 8, gps: 5, traffic: 0, weather: 0, emergency: 0 },
      snapshots: { vehicle: '9007199254740993', gps: '4312' },
      remoteId: 'jr_new',
    });
    const start = mocks.glue.commandCalls(StartJobRunCommand);
    assert.equal(start.length, 1);
    assert.deepEqual(start[0]!.args[0].input, {
      JobName: 'smartcity-curate',
      Arguments: {
        '--from': FROM,
        '--to': TO,
        '--raw_root': 's3://sc-raw/raw/',
        // The Iceberg tables: smartcity.<source> in the Glue catalog, at s3://sc-curated/<source>.
        '--curated_root': 's3://sc-curated',
        '--catalog_type': 'glue',
        '--namespace': 'smartcity',
        '--schemas_dir': 's3://sc-artifacts/spark/schemas/',
        '--summary_path': `s3://sc-artifacts/${SUMMARY_KEY}`,
      },
    });
    assert.deepEqual(run.heartbeats[0], { handle: 'jr_new' });
  });

  test('joins the active run of the same window instead of starting a second one', async () => {
    const { activities, mocks } = setup();
    mocks.glue.on(GetJobRunsCommand).resolves({
      JobRuns: [
        { Id: 'jr_other', JobRunState: 'RUNNING', Arguments: { '--from': '2026-03-02T08:00:00.000Z', '--to': FROM } },
        { Id: 'jr_done', JobRunState: 'FAILED', Arguments: { '--from': FROM, '--to': TO } },
        { Id: 'jr_same', JobRunState: 'RUNNING', Arguments: { '--from': FROM, '--to': TO } },
      ],
    });
    mocks.glue.on(GetJobRunCommand, { RunId: 'jr_same' }).resolves({ JobRun: { Id: 'jr_same', JobRunState: 'SUCCEEDED' } });
    const run = await runActivity(() => activities.curateWindow({ window: WINDOW }));
    assert.equal(run.result?.remoteId, 'jr_same');
    assert.equal(mocks.glue.commandCalls(StartJobRunCommand).length, 0);
  });

  test('finds the active run on a later page of GetJobRuns, and stops listing at a page of runs past their timeout', async () => {
    const minutesAgo = (m: number) => new Date(Date.now() - m * 60_000);
    const done = (id: string, startedMinutesAgo: number) => ({ Id: id, JobRunState: 'SUCCEEDED' as const, StartedOn: minutesAgo(startedMinutesAgo), Timeout: 60 });
    const pages: Record<string, { JobRuns: object[]; NextToken?: string }> = {
      first: { JobRuns: [done('jr_a', 5), done('jr_b', 20)], NextToken: 'p2' },
      p2: { JobRuns: [{ Id: 'jr_same', JobRunState: 'RUNNING', StartedOn: minutesAgo(30), Timeout: 60, Arguments: { '--from': FROM, '--to': TO } }], NextToken: 'p3' },
      p3: { JobRuns: [done('jr_old', 600)] },
    };
    const { activities, mocks } = setup();
    mocks.glue.on(GetJobRunsCommand).callsFake((input: { NextToken?: string }) => pages[input.NextToken ?? 'first']);
    mocks.glue.on(GetJobRunCommand, { RunId: 'jr_same' }).resolves({ JobRun: { Id: 'jr_same', JobRunState: 'SUCCEEDED' } });
    const joined = await runActivity(() => activities.curateWindow({ window: WINDOW }));
    assert.equal(joined.result?.remoteId, 'jr_same');
    assert.equal(mocks.glue.commandCalls(StartJobRunCommand).length, 0);

    // No active run: the listing ends at the first page whose runs can no longer be active.
    pages.p2 = { JobRuns: [done('jr_c', 200)], NextToken: 'p3' };
    mocks.glue.resetHistory();
    mocks.glue.on(GetJobRunCommand, { RunId: 'jr_new' }).resolves({ JobRun: { Id: 'jr_new', JobRunState: 'SUCCEEDED' } });
    const started = await runActivity(() => activities.curateWindow({ window: WINDOW }));
    assert.equal(started.result?.remoteId, 'jr_new');
    assert.equal(mocks.glue.commandCalls(GetJobRunsCommand).length, 2, 'page three, months of history, is not read');
  });

  test('a retried attempt resumes the run from its heartbeat without listing or starting runs', async () => {
    const { activities, mocks } = setup();
    mocks.glue.on(GetJobRunCommand, { RunId: 'jr_7' }).resolves({ JobRun: { Id: 'jr_7', JobRunState: 'SUCCEEDED' } });
    const run = await runActivity(() => activities.curateWindow({ window: WINDOW }), { heartbeatDetails: { handle: 'jr_7' } });
    assert.equal(run.result?.remoteId, 'jr_7');
    assert.equal(mocks.glue.commandCalls(GetJobRunsCommand).length, 0);
    assert.equal(mocks.glue.commandCalls(StartJobRunCommand).length, 0);
  });

  test('throttling fails the attempt as retryable; the next attempt resumes the same run and succeeds', async () => {
    const { activities, mocks } = setup();
    mocks.glue
      .on(GetJobRunCommand)
      .resolvesOnce({ JobRun: { Id: 'jr_new', JobRunState: 'RUNNING' } })
      .rejectsOnce(sdkError('ThrottlingException', { message: 'Rate exceeded' }))
      .resolves({ JobRun: { Id: 'jr_new', JobRunState: 'SUCCEEDED' } });
    const first = await runActivity(() => activities.curateWindow({ window: WINDOW }));
    const f = failureOf(first.error);
    assert.equal(f.type, 'Aws.ThrottlingException');
    assert.equal(f.nonRetryable, false);
    const second = await runActivity(() => activities.curateWindow({ window: WINDOW }), { heartbeatDetails: first.heartbeats.at(-1) });
    assert.equal(second.result?.remoteId, 'jr_new');
    assert.equal(mocks.glue.commandCalls(StartJobRunCommand).length, 1);
  });

  test('ConcurrentRunsExceededException is a retryable failure', async () => {
    const { activities, mocks } = setup();
    mocks.glue.on(StartJobRunCommand).rejects(sdkError('ConcurrentRunsExceededException'));
    const f = failureOf((await runActivity(() => activities.curateWindow({ window: WINDOW }))).error);
    assert.equal(f.type, 'Aws.ConcurrentRunsExceededException');
    assert.equal(f.nonRetryable, false);
  });

  test('AccessDenied on StartJobRun fails fast naming the IAM action and the job', async () => {
    const { activities, mocks } = setup();
    mocks.glue.on(StartJobRunCommand).rejects(sdkError('AccessDeniedException'));
    const f = failureOf((await runActivity(() => activities.curateWindow({ window: WINDOW }))).error);
    assert.equal(f.nonRetryable, true);
    assert.match(f.message, /glue:StartJobRun on job smartcity-curate/);
    assert.match(f.message, /worker policy \(infra\/ defines it\)/);
  });

  test('a failed run fails fast with its error message, log group and the tail of its error log', async () => {
    const { activities, mocks } = setup();
    mocks.glue.on(GetJobRunCommand).resolves({
      JobRun: { Id: 'jr_new', JobRunState: 'FAILED', ErrorMessage: 'AnalysisException: path does not exist', LogGroupName: '/aws-glue/jobs' },
    });
    mocks.logs
      .on(GetLogEventsCommand, { logGroupName: '/aws-glue/jobs/error', logStreamName: 'jr_new' })
      .resolves({ events: [{ message: 'Traceback (most recent call last):\n' }, { message: 'pyspark.errors.AnalysisException: boom' }] });
    const f = failureOf((await runActivity(() => activities.curateWindow({ window: WINDOW }))).error);
    assert.equal(f.type, 'Glue.JobRunFailed');
    assert.equal(f.nonRetryable, true);
    assert.match(f.message, /FAILED: AnalysisException: path does not exist/);
    assert.match(f.message, /CloudWatch \/aws-glue\/jobs\/error stream jr_new/);
    assert.match(f.message, /pyspark\.errors\.AnalysisException: boom/);
  });

  test('a summary of a script from before Iceberg (no snapshot_id) gives no snapshots; a numeric snapshot_id is refused', async () => {
    const { activities, mocks } = setup();
    mocks.glue.on(GetJobRunCommand).resolves({ JobRun: { Id: 'jr_new', JobRunState: 'SUCCEEDED' } });
    const old = { sources: { gps: { rows_read: 5, duplicates_dropped: 0, rows_written: 5 } } };
    mocks.s3.on(GetObjectCommand).resolves({ Body: body(JSON.stringify(old)) });
    const run = await runActivity(() => activities.curateWindow({ window: WINDOW }));
    assert.equal(run.error, undefined, String(run.error));
    assert.equal(run.result?.snapshots, undefined);
    // 64-bit ids lose digits as JSON numbers: only the string form is taken.
    mocks.s3.on(GetObjectCommand).resolves({ Body: body('{"sources": {"gps": {"rows_read": 5, "duplicates_dropped": 0, "rows_written": 5, "snapshot_id": 9007199254740993}}}') });
    const f = failureOf((await runActivity(() => activities.curateWindow({ window: WINDOW }))).error);
    assert.equal(f.type, 'Glue.NoRunSummary');
    assert.match(f.message, /is not a curate summary/);
  });

  test('a run that succeeded without a summary fails naming the missing object', async () => {
    const { activities, mocks } = setup();
    mocks.s3.on(GetObjectCommand).rejects(sdkError('NoSuchKey', { status: 404 }));
    mocks.glue.on(GetJobRunCommand).resolves({ JobRun: { Id: 'jr_new', JobRunState: 'SUCCEEDED' } });
    const f = failureOf((await runActivity(() => activities.curateWindow({ window: WINDOW }))).error);
    assert.equal(f.type, 'Glue.NoRunSummary');
    assert.match(f.message, new RegExp(`s3://sc-artifacts/${SUMMARY_KEY} does not exist`));
  });

  test('a workflow cancellation stops the run with BatchStopJobRun', async () => {
    const { activities, mocks } = setup();
    mocks.glue.on(GetJobRunCommand).resolves({ JobRun: { Id: 'jr_new', JobRunState: 'RUNNING' } });
    mocks.glue.on(BatchStopJobRunCommand).resolves({ SuccessfulSubmissions: [{ JobName: 'smartcity-curate', JobRunId: 'jr_new' }] });
    const run = await runActivity(() => activities.curateWindow({ window: WINDOW }), { cancel: { afterHeartbeats: 3, how: 'workflow' } });
    assert.ok(run.error instanceof CancelledFailure);
    assert.deepEqual(mocks.glue.commandCalls(BatchStopJobRunCommand).map((c) => c.args[0].input), [{ JobName: 'smartcity-curate', JobRunIds: ['jr_new'] }]);
  });

  test('a worker shutdown leaves the run alone', async () => {
    const { activities, mocks } = setup();
    mocks.glue.on(GetJobRunCommand).resolves({ JobRun: { Id: 'jr_new', JobRunState: 'RUNNING' } });
    const run = await runActivity(() => activities.curateWindow({ window: WINDOW }), { cancel: { afterHeartbeats: 2, how: 'worker-shutdown' } });
    assert.ok(run.error instanceof CancelledFailure);
    assert.equal(mocks.glue.commandCalls(BatchStopJobRunCommand).length, 0);
  });
});

describe('crawlLayer on Glue', () => {
  const LANDED = new Date('2026-03-02T10:05:00Z');
  const cols = (...names: Array<[string, string]>) => ({ StorageDescriptor: { Columns: names.map(([Name, Type]) => ({ Name, Type })) } });

  function setup(mocks: AwsMocks) {
    mocks.s3.on(ListObjectsV2Command).resolves({ Contents: [] });
    mocks.s3
      .on(ListObjectsV2Command, { Bucket: 'sc-raw', Prefix: 'raw/gps/date=2026-03-02/hour=09/' })
      .resolves({ Contents: [{ Key: 'raw/gps/date=2026-03-02/hour=09/batch_id=3/part-0.parquet', LastModified: LANDED }] });
    mocks.glue
      .on(GetTablesCommand)
      .resolvesOnce({ TableList: [{ Name: 'raw_gps', ...cols(['event_id', 'string'], ['speed', 'double']) }] })
      .resolves({
        TableList: [
          { Name: 'raw_gps', ...cols(['event_id', 'string'], ['speed', 'double'], ['satellites', 'bigint']) },
          { Name: 'raw_vehicle', ...cols(['event_id', 'string']) },
          { Name: 'other_table', ...cols(['x', 'int']) },
        ],
      });
    mocks.glue.on(GetPartitionsCommand, { TableName: 'raw_gps' }).resolvesOnce({ Partitions: [{}] }).resolves({ Partitions: [{}, {}] });
    mocks.glue.on(GetPartitionsCommand, { TableName: 'raw_vehicle' }).resolves({ Partitions: [{}] });
  }

  test('crawls, waits and reports tables, schema changes and partitions added in the window', async () => {
    const { deps, mocks } = mockedAwsDeps();
    setup(mocks);
    mocks.glue.on(StartCrawlerCommand).resolves({});
    mocks.glue
      .on(GetCrawlerCommand)
      .resolvesOnce({ Crawler: { Name: 'smartcity-raw', State: 'RUNNING' } })
      .resolves({ Crawler: { Name: 'smartcity-raw', State: 'READY', LastCrawl: { Status: 'SUCCEEDED', StartTime: new Date('2026-03-02T10:06:00Z') } } });
    const run = await runActivity(() => glueActivities(deps).crawlLayer({ layer: 'raw', window: WINDOW }));
    assert.deepEqual(run.result, {
      layer: 'raw',
      tables: ['raw_gps', 'raw_vehicle'],
      partitionsAdded: 2,
      schemaChanges: ['raw_gps: new column satellites bigint'],
      startedAt: '2026-03-02T10:06:00.000Z',
    });
    assert.deepEqual(mocks.glue.commandCalls(StartCrawlerCommand).map((c) => c.args[0].input), [{ Name: 'smartcity-raw' }]);
    assert.match(String(mocks.glue.commandCalls(GetPartitionsCommand)[0]!.args[0].input.Expression), /^date IN \('2026-03-02'\)$/);
  });

  test('CrawlerRunningException joins the running crawl; one that began before the data landed is followed by another crawl', async () => {
    const { deps, mocks } = mockedAwsDeps();
    setup(mocks);
    mocks.glue.on(StartCrawlerCommand).rejectsOnce(sdkError('CrawlerRunningException')).resolves({});
    mocks.glue
      .on(GetCrawlerCommand)
      .resolvesOnce({ Crawler: { State: 'RUNNING' } })
      .resolvesOnce({ Crawler: { State: 'READY', LastCrawl: { Status: 'SUCCEEDED', StartTime: new Date('2026-03-02T10:04:00Z') } } })
      .resolvesOnce({ Crawler: { State: 'RUNNING' } })
      .resolves({ Crawler: { State: 'READY', LastCrawl: { Status: 'SUCCEEDED', StartTime: new Date('2026-03-02T10:07:00Z') } } });
    const run = await runActivity(() => glueActivities(deps).crawlLayer({ layer: 'raw', window: WINDOW }));
    assert.equal(run.result?.startedAt, '2026-03-02T10:07:00.000Z');
    assert.equal(mocks.glue.commandCalls(StartCrawlerCommand).length, 2);
    assert.deepEqual(run.heartbeats[0], {
      handle: { crawler: 'smartcity-raw', landedAt: LANDED.toISOString(), started: false, before: { columns: { raw_gps: [{ name: 'event_id', type: 'string' }, { name: 'speed', type: 'double' }] }, partitions: { raw_gps: 1 } } },
    });
  });

  test('a joined crawl that began after the data landed is used as it is', async () => {
    const { deps, mocks } = mockedAwsDeps();
    setup(mocks);
    mocks.glue.on(StartCrawlerCommand).rejects(sdkError('CrawlerRunningException'));
    mocks.glue.on(GetCrawlerCommand).resolves({ Crawler: { State: 'READY', LastCrawl: { Status: 'SUCCEEDED', StartTime: new Date('2026-03-02T10:05:30Z') } } });
    const run = await runActivity(() => glueActivities(deps).crawlLayer({ layer: 'raw', window: WINDOW }));
    assert.equal(run.result?.startedAt, '2026-03-02T10:05:30.000Z');
    assert.equal(mocks.glue.commandCalls(StartCrawlerCommand).length, 1);
  });

  test('a failed crawl fails fast with its error message and log location', async () => {
    const { deps, mocks } = mockedAwsDeps();
    setup(mocks);
    mocks.glue.on(StartCrawlerCommand).resolves({});
    mocks.glue.on(GetCrawlerCommand).resolves({
      Crawler: { State: 'READY', LastCrawl: { Status: 'FAILED', StartTime: new Date('2026-03-02T10:06:00Z'), ErrorMessage: 'Insufficient Lake Formation permission', LogGroup: '/aws-glue/crawlers', LogStream: 'smartcity-raw' } },
    });
    const f = failureOf((await runActivity(() => glueActivities(deps).crawlLayer({ layer: 'raw', window: WINDOW }))).error);
    assert.equal(f.type, 'Glue.CrawlFailed');
    assert.equal(f.nonRetryable, true);
    assert.match(f.message, /Insufficient Lake Formation permission\. Logs: CloudWatch \/aws-glue\/crawlers stream smartcity-raw/);
  });

  test('a missing crawler fails fast naming it', async () => {
    const { deps, mocks } = mockedAwsDeps();
    setup(mocks);
    mocks.glue.on(StartCrawlerCommand).rejects(sdkError('EntityNotFoundException', { message: 'Crawler entry with name smartcity-raw does not exist' }));
    const f = failureOf((await runActivity(() => glueActivities(deps).crawlLayer({ layer: 'raw', window: WINDOW }))).error);
    assert.equal(f.nonRetryable, true);
    assert.match(f.message, /crawler smartcity-raw does not exist: check the setting/);
  });

  test('curated needs no crawl (Iceberg commits register the tables): runs that still ask get the curated tables, nothing added, no crawler started', async () => {
    const { deps, mocks } = mockedAwsDeps();
    const iceberg = { Parameters: { table_type: 'ICEBERG', metadata_location: 's3://sc-curated/gps/metadata/00001.metadata.json' } };
    mocks.glue.on(GetTablesCommand).resolves({
      TableList: [{ Name: 'raw_gps', ...cols(['event_id', 'string']) }, { Name: 'gps', ...cols(['event_id', 'string']), ...iceberg }, { Name: 'vehicle', ...cols(['event_id', 'string']), ...iceberg }],
    });
    const run = await runActivity(() => glueActivities(deps).crawlLayer({ layer: 'curated', window: WINDOW }));
    assert.equal(run.error, undefined, String(run.error));
    assert.deepEqual({ ...run.result, startedAt: undefined }, { layer: 'curated', tables: ['gps', 'vehicle'], partitionsAdded: 0, schemaChanges: [], startedAt: undefined });
    assert.ok(Date.parse(run.result!.startedAt) > 0);
    assert.equal(mocks.glue.commandCalls(StartCrawlerCommand).length + mocks.glue.commandCalls(GetCrawlerCommand).length, 0);
    assert.equal(mocks.glue.commandCalls(GetTablesCommand).length, 1, 'one catalog listing');
  });

  test('a curated table that is not Iceberg (a crawler\'s of the same name) fails for good, naming it', async () => {
    const { deps, mocks } = mockedAwsDeps();
    mocks.glue.on(GetTablesCommand).resolves({ TableList: [{ Name: 'gps', ...cols(['event_id', 'string']), Parameters: { classification: 'parquet' } }] });
    const f = failureOf((await runActivity(() => glueActivities(deps).crawlLayer({ layer: 'curated', window: WINDOW }))).error);
    assert.equal(f.type, 'Aws.CuratedTableNotIceberg');
    assert.equal(f.nonRetryable, true);
    assert.match(f.message, /smartcity\.gps is not an Iceberg table/);
  });

  test('throttling on the crawler fails the attempt as retryable', async () => {
    const { deps, mocks } = mockedAwsDeps();
    setup(mocks);
    mocks.glue.on(StartCrawlerCommand).resolves({});
    mocks.glue.on(GetCrawlerCommand).rejects(sdkError('ThrottlingException'));
    const f = failureOf((await runActivity(() => glueActivities(deps).crawlLayer({ layer: 'raw', window: WINDOW }))).error);
    assert.equal(f.nonRetryable, false);
  });
});
