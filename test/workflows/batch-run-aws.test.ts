// The real batchRun workflow with the aws activities, on the time-skipping server, against moto:
// Glue crawls and the curate job run, S3 and Athena answer over HTTP. Redshift statements cannot
// finish in moto 5.2.5 (no BatchExecuteStatement, every statement stays STARTED), so the Redshift
// Data client alone is an aws-sdk-client-mock stub here; the moto tier covers its wire format.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import {
  BatchExecuteStatementCommand,
  DescribeStatementCommand,
  ExecuteStatementCommand,
  GetStatementResultCommand,
} from '@aws-sdk/client-redshift-data';
import { GetQueryExecutionCommand, ListQueryExecutionsCommand } from '@aws-sdk/client-athena';
import { GetJobRunsCommand } from '@aws-sdk/client-glue';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { mockClient } from 'aws-sdk-client-mock';
import { loadConfig } from '../../config';
import { awsActivities } from '../../activities/aws';
import { curateSummaryKey } from '../../activities/aws/s3';
import { rulesOf } from '../../schemas/column-rules';
import { batchRun } from '../../workflows';
import { createTimeSkippingEnv } from '../helpers/temporal';
import {
  athenaResults,
  createBuckets,
  createCrawlers,
  createCurateJob,
  createDatabase,
  createIcebergTable,
  createLakeTable,
  motoWorld,
  putObject,
  setTransition,
  startMoto,
  unsetTransition,
  type MotoServer,
} from '../helpers/moto';
import { TIMEOUT, workflowBundle } from './stubs';

const window = { from: '2026-03-02T12:00:00.000Z', to: '2026-03-02T12:05:00.000Z' };
const partition = 'date=2026-03-02/hour=12';

describe('batchRun with the aws activities (moto)', () => {
  let env: TestWorkflowEnvironment;
  let moto: MotoServer;
  before(async () => {
    [env, moto] = await Promise.all([createTimeSkippingEnv(loadConfig()), startMoto(), workflowBundle()]);
    // Crawls complete on the next look (moto otherwise completes them only when ListCrawls is called).
    await setTransition(moto.endpoint, 'glue::crawl', { progression: 'immediate' });
  });
  after(async () => {
    await unsetTransition(moto.endpoint, 'glue::crawl').catch(() => undefined);
    await env?.teardown();
    await moto?.stop();
  });

  test('crawls, counts, curates, loads and checks one window through Glue, S3, Athena and Redshift', TIMEOUT, async () => {
    const world = motoWorld(moto.endpoint);
    const aws = world.config.aws!;
    await createBuckets(world);
    await createDatabase(world);
    await createCrawlers(world);
    await createCurateJob(world);
    // What the streaming job landed, the curate job wrote and the crawlers catalogued (moto runs
    // neither Spark nor a real crawl): three gps events in the window.
    await putObject(world, aws.buckets.raw, `raw/gps/${partition}/batch_id=7/part-0.parquet`, 'PAR1');
    await putObject(world, aws.buckets.curated, 'gps/data/event_time_hour=2026-03-02-12/00000-0-x.parquet', 'PAR1');
    const columns = rulesOf('gps').map((r) => ({ name: r.column, type: r.column === 'event_time' ? 'timestamp' : 'string' }));
    await createLakeTable(world, 'raw_gps', columns);
    // The curate job's MERGE registers its Iceberg table in the Glue catalog (no curated crawl).
    await createIcebergTable(world, 'gps', columns);
    await putObject(world, aws.buckets.artifacts, curateSummaryKey(window), JSON.stringify({ sources: { gps: { rows_read: 4, duplicates_dropped: 1, rows_written: 3, snapshot_id: '5871234567890123456' } } }));
    // Athena answers in query order: the raw count, then the lake side of the quality checks.
    await athenaResults(world, [
      { columns: ['source', 'w0'], rows: [['gps', 4]] },
      {
        columns: ['source', 'raw', 'curated', 'curated_distinct', 'not_curated', 'not_curated_examples', 'not_raw', 'not_raw_examples', 'curated_fingerprint'],
        rows: [['gps', 3, 3, 3, 0, null, 0, null, 6442450941]],
      },
    ]);
    const redshift = mockClient(world.clients.redshiftData);
    redshift.on(BatchExecuteStatementCommand).resolves({ Id: 'load-gps' });
    redshift.on(ExecuteStatementCommand).resolves({ Id: 'quality' });
    redshift.on(DescribeStatementCommand).resolves({ Status: 'FINISHED' });
    redshift.on(GetStatementResultCommand, { Id: 'load-gps:7' }).resolves({ ColumnMetadata: [{ name: 'row_count' }], Records: [[{ longValue: 3 }]] });
    redshift.on(GetStatementResultCommand, { Id: 'quality' }).resolves({
      ColumnMetadata: [{ name: 'row_count' }, { name: 'distinct_ids' }, { name: 'fingerprint' }],
      Records: [[{ longValue: 3 }, { longValue: 3 }, { stringValue: '6442450941' }]],
    });

    const activitySet = awsActivities(world.config, { pollIntervalMs: 5, clients: world.clients });
    const worker = await Worker.create({
      connection: env.nativeConnection,
      namespace: env.namespace ?? 'default',
      taskQueue: `aws-${randomUUID()}`,
      workflowBundle: await workflowBundle(),
      activities: activitySet.activities,
    });
    try {
      const result = await worker.runUntil(
        env.client.workflow.execute(batchRun, { taskQueue: worker.options.taskQueue, workflowId: `batch-aws-${randomUUID()}`, args: [{ window }] }),
      );
      assert.deepEqual(result.rawRows, { vehicle: 0, gps: 4, traffic: 0, weather: 0, emergency: 0 });
      const { remoteId, ...curated } = result.curated ?? assert.fail('a batch run of its own curates');
      assert.deepEqual(curated, { rowsRead: 4, duplicatesDropped: 1, rowsWritten: { vehicle: 0, gps: 3, traffic: 0, weather: 0, emergency: 0 }, snapshots: { gps: '5871234567890123456' } });
      assert.match(remoteId ?? '', /^jr_/, 'the Glue job run id');
      assert.equal(result.loaded.gps, 3);
      assert.deepEqual(result.counts.warehouse, { vehicle: 0, gps: 3, traffic: 0, weather: 0, emergency: 0 });
      assert.ok(result.checks.every((c) => c.passed), JSON.stringify(result.checks.filter((c) => !c.passed)));
      assert.equal(result.checks.length, 25);
    } finally {
      await activitySet.close();
    }
    // The remote work the run did, as the services recorded it.
    const runs = (await world.clients.glue.send(new GetJobRunsCommand({ JobName: aws.glue.curateJob }))).JobRuns ?? [];
    assert.deepEqual(runs.map((r) => [r.Arguments?.['--from'], r.Arguments?.['--to'], r.JobRunState]), [[window.from, window.to, 'SUCCEEDED']]);
    const queries = (await world.clients.athena.send(new ListQueryExecutionsCommand({ WorkGroup: 'primary' }))).QueryExecutionIds ?? [];
    assert.equal(queries.length, 2);
    for (const id of queries) {
      const q = await world.clients.athena.send(new GetQueryExecutionCommand({ QueryExecutionId: id }));
      assert.equal(q.QueryExecution?.QueryExecutionContext?.Database, aws.glue.database);
    }
    const [load] = redshift.commandCalls(BatchExecuteStatementCommand).map((c) => c.args[0].input);
    // The window read from the curated Iceberg table through the external schema on the Glue database.
    assert.ok(load?.Sqls?.some((s) => /^INSERT INTO "[^"]+"\."gps" .* FROM "[^"]+_lake"\."gps" WHERE/s.test(s)), load?.Sqls?.join('\n'));
  });
});
