import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { AddJobFlowStepsCommand, CancelStepsCommand, DescribeStepCommand, ListStepsCommand } from '@aws-sdk/client-emr';
import { GetObjectCommand, type GetObjectCommandOutput } from '@aws-sdk/client-s3';
import { ApplicationFailure } from '@temporalio/common';
import { emrActivities } from '../../activities/aws/emr';
import { mockedAwsDeps, runActivity, sdkError } from '../helpers/aws-mock';

const SPEC = { jobName: 'ingest', triggerSeconds: 10, maxOffsetsPerTrigger: 5000 };
const NAME = 'smartcity-stream:ingest';
const PROGRESS = { Bucket: 'sc-checkpoints', Key: '_progress/ingest.jsonl' };
const body = (text: string) => ({ transformToString: () => Promise.resolve(text) }) as unknown as GetObjectCommandOutput['Body'];
/** A progress line as the job writes it (spark/jobs/stream_ingest.py). */
const line = (batchId: number) =>
  JSON.stringify({ batch_id: batchId, ingest_time: '2026-03-02T07:00:00.000Z', duration_ms: 1500, consumed: 12, valid: { vehicle: 7, gps: 4 }, quarantined: { gps: 1 }, offsets: {}, freshness_ms: 900 });

describe('streaming job as an EMR step', () => {
  test('adds one spark-submit step with S3 roots, brokers, the Kafka secret ARN and the trigger', async () => {
    const { deps, mocks } = mockedAwsDeps();
    mocks.emr.on(ListStepsCommand).resolves({ Steps: [{ Id: 's-OLD', Name: 'smartcity-stream:other', Status: { State: 'RUNNING' } }] });
    mocks.emr.on(AddJobFlowStepsCommand).resolves({ StepIds: ['s-NEW'] });
    const state = await emrActivities(deps).startStreamingJob(SPEC);
    assert.deepEqual(state, { jobName: 'ingest', state: 'running', remoteId: 's-NEW' });
    const input = mocks.emr.commandCalls(AddJobFlowStepsCommand)[0]!.args[0].input;
    assert.equal(input.JobFlowId, 'j-TESTCLUSTER1');
    const step = input.Steps![0]!;
    assert.equal(step.Name, NAME);
    assert.equal(step.HadoopJarStep?.Jar, 'command-runner.jar');
    const args = step.HadoopJarStep.Args!;
    assert.equal(args[0], 'spark-submit');
    assert.ok(args.includes('s3://sc-artifacts/spark/jobs/stream_ingest.py'));
    const flag = (name: string) => args[args.indexOf(name) + 1];
    assert.equal(flag('--raw-root'), 's3://sc-raw/raw/');
    assert.equal(flag('--quarantine-root'), 's3://sc-quarantine/quarantine/');
    assert.equal(flag('--checkpoint'), 's3://sc-checkpoints/checkpoints/ingest/');
    // Where the watch reads the job's progress (the same location, named on both sides).
    assert.equal(flag('--progress-file'), `s3://${PROGRESS.Bucket}/${PROGRESS.Key}`);
    assert.equal(flag('--brokers'), 'b-1.kafka.example:9096,b-2.kafka.example:9096');
    assert.equal(flag('--kafka-secret-id'), 'arn:aws:secretsmanager:eu-west-2:123456789012:secret:smartcity-kafka-AbCdEf');
    assert.equal(flag('--trigger-seconds'), '10');
    assert.equal(flag('--max-offsets-per-trigger'), '5000');
    assert.ok(!args.some((a) => /password/i.test(a)), 'no password in step arguments');
  });

  test('a retried start finds the active step of the same name and adds none', async () => {
    const { deps, mocks } = mockedAwsDeps();
    mocks.emr.on(ListStepsCommand, { StepStates: ['PENDING', 'RUNNING'] }).resolves({ Steps: [{ Id: 's-RUN', Name: NAME, Status: { State: 'RUNNING' } }] });
    const state = await emrActivities(deps).startStreamingJob(SPEC);
    assert.deepEqual(state, { jobName: 'ingest', state: 'running', remoteId: 's-RUN' });
    assert.equal(mocks.emr.commandCalls(AddJobFlowStepsCommand).length, 0);
  });

  test('the running step on the second page of ListSteps is joined, not started again', async () => {
    const { deps, mocks } = mockedAwsDeps();
    // A busy cluster: a full first page of other active steps, ours on the page after.
    const others = Array.from({ length: 50 }, (_, i) => ({ Id: `s-OTHER${i}`, Name: `someone-else:${i}`, Status: { State: 'PENDING' as const } }));
    mocks.emr.on(ListStepsCommand, { StepStates: ['PENDING', 'RUNNING'] }).callsFake((input: { Marker?: string }) =>
      input.Marker === undefined ? { Steps: others, Marker: 'page-2' } : { Steps: [{ Id: 's-RUN', Name: NAME, Status: { State: 'RUNNING' } }] },
    );
    mocks.emr.on(AddJobFlowStepsCommand).resolves({ StepIds: ['s-SECOND'] });
    const state = await emrActivities(deps).startStreamingJob(SPEC);
    assert.deepEqual(state, { jobName: 'ingest', state: 'running', remoteId: 's-RUN' });
    assert.equal(mocks.emr.commandCalls(ListStepsCommand).length, 2, 'read both pages');
    assert.equal(mocks.emr.commandCalls(AddJobFlowStepsCommand).length, 0, 'no second streaming step');
  });

  test('watch and stop find the step on a later page too, and stop reading once it is found', async () => {
    const { deps, mocks } = mockedAwsDeps();
    const pages: Record<string, { Steps: { Id: string; Name: string; Status: { State: 'RUNNING' | 'COMPLETED' } }[]; Marker?: string }> = {
      first: { Steps: [{ Id: 's-A', Name: 'other', Status: { State: 'COMPLETED' } }], Marker: 'p2' },
      p2: { Steps: [{ Id: 's-RUN', Name: NAME, Status: { State: 'RUNNING' } }], Marker: 'p3' },
      p3: { Steps: [{ Id: 's-OLDER', Name: NAME, Status: { State: 'COMPLETED' } }] },
    };
    mocks.emr.on(ListStepsCommand).callsFake((input: { Marker?: string }) => pages[input.Marker ?? 'first']);
    mocks.emr.on(DescribeStepCommand).resolves({ Step: { Id: 's-RUN', Status: { State: 'COMPLETED' } } });
    const run = await runActivity(() => emrActivities(deps).watchStreamingJob({ jobName: 'ingest', maxWaitSeconds: 600 }));
    assert.deepEqual(run.result, { jobName: 'ingest', state: 'succeeded', remoteId: 's-RUN' });
    assert.deepEqual(mocks.emr.commandCalls(DescribeStepCommand).map((c) => c.args[0].input.StepId), ['s-RUN']);
    assert.equal(mocks.emr.commandCalls(ListStepsCommand).length, 2, 'the newest match ends the listing');
  });

  test('a validation error on AddJobFlowSteps fails fast', async () => {
    const { deps, mocks } = mockedAwsDeps();
    mocks.emr.on(ListStepsCommand).resolves({ Steps: [] });
    mocks.emr.on(AddJobFlowStepsCommand).rejects(sdkError('ValidationException', { message: 'Cluster is terminated' }));
    await assert.rejects(emrActivities(deps).startStreamingJob(SPEC), (err: unknown) => err instanceof ApplicationFailure && err.nonRetryable && /elasticmapreduce:AddJobFlowSteps on cluster j-TESTCLUSTER1/.test(err.message));
  });

  test('watch returns the failed step with its FailureDetails as evidence', async () => {
    const { deps, mocks } = mockedAwsDeps();
    mocks.emr.on(ListStepsCommand).resolves({ Steps: [{ Id: 's-RUN', Name: NAME, Status: { State: 'RUNNING' } }] });
    mocks.emr
      .on(DescribeStepCommand)
      .resolvesOnce({ Step: { Id: 's-RUN', Status: { State: 'RUNNING' } } })
      .resolves({ Step: { Id: 's-RUN', Status: { State: 'FAILED', FailureDetails: { Reason: 'Unknown error.', Message: 'Exception in thread main', LogFile: 's3://logs/j-1/steps/s-RUN/stderr.gz' } } } });
    const run = await runActivity(() => emrActivities(deps).watchStreamingJob({ jobName: 'ingest', maxWaitSeconds: 600 }));
    assert.equal(run.result?.state, 'failed');
    assert.equal(run.result?.failure, 'EMR step s-RUN failed: Unknown error.\nException in thread main\nlog file: s3://logs/j-1/steps/s-RUN/stderr.gz');
  });

  test('watch returns the running state when its wait is over, and resumes with the same deadline', async () => {
    const { deps, mocks } = mockedAwsDeps();
    mocks.emr.on(ListStepsCommand).resolves({ Steps: [{ Id: 's-RUN', Name: NAME, Status: { State: 'RUNNING' } }] });
    mocks.emr.on(DescribeStepCommand).resolves({ Step: { Id: 's-RUN', Status: { State: 'RUNNING' } } });
    const run = await runActivity(() => emrActivities(deps).watchStreamingJob({ jobName: 'ingest', maxWaitSeconds: 3600 }), {
      heartbeatDetails: { handle: { stepId: 's-RUN', deadline: Date.now() - 1 } },
    });
    assert.deepEqual(run.result, { jobName: 'ingest', state: 'running', remoteId: 's-RUN' });
    assert.equal(mocks.emr.commandCalls(DescribeStepCommand).length, 1);
  });

  test('watch returns the latest micro-batch from the step\'s progress object on S3', async () => {
    const { deps, mocks } = mockedAwsDeps();
    mocks.emr.on(ListStepsCommand).resolves({ Steps: [{ Id: 's-RUN', Name: NAME, Status: { State: 'RUNNING' } }] });
    mocks.emr.on(DescribeStepCommand).resolves({ Step: { Id: 's-RUN', Status: { State: 'RUNNING' } } });
    // Batch 8's line is being rewritten: the last complete line is the latest batch.
    mocks.s3.on(GetObjectCommand, PROGRESS).resolves({ Body: body(`${line(6)}\n${line(7)}\n{"batch_id":8,"ingest_t`) });
    const run = await runActivity(() => emrActivities(deps).watchStreamingJob({ jobName: 'ingest', maxWaitSeconds: 0 }));
    assert.deepEqual(run.result, {
      jobName: 'ingest',
      state: 'running',
      remoteId: 's-RUN',
      lastProgress: { batchId: 7, at: '2026-03-02T07:00:01.500Z', consumed: 12, valid: 11, quarantined: 1, durationMs: 1500 },
    });
    assert.deepEqual(mocks.s3.commandCalls(GetObjectCommand).map((c) => c.args[0].input), [PROGRESS]);
  });

  test('watch without a progress object yet, or unable to read it, reports the step\'s state alone', async () => {
    for (const error of [sdkError('NoSuchKey', { status: 404 }), sdkError('AccessDenied', { status: 403 }), sdkError('SlowDown', { status: 503 })]) {
      const { deps, mocks } = mockedAwsDeps();
      mocks.emr.on(ListStepsCommand).resolves({ Steps: [{ Id: 's-RUN', Name: NAME, Status: { State: 'RUNNING' } }] });
      mocks.emr.on(DescribeStepCommand).resolves({ Step: { Id: 's-RUN', Status: { State: 'RUNNING' } } });
      mocks.s3.on(GetObjectCommand).rejects(error);
      const run = await runActivity(() => emrActivities(deps).watchStreamingJob({ jobName: 'ingest', maxWaitSeconds: 0 }));
      assert.deepEqual(run.result, { jobName: 'ingest', state: 'running', remoteId: 's-RUN' }, error.name);
    }
  });

  test('a cancelled watch does not cancel the step (the supervisor stops it)', async () => {
    const { deps, mocks } = mockedAwsDeps();
    mocks.emr.on(ListStepsCommand).resolves({ Steps: [{ Id: 's-RUN', Name: NAME, Status: { State: 'RUNNING' } }] });
    mocks.emr.on(DescribeStepCommand).resolves({ Step: { Id: 's-RUN', Status: { State: 'RUNNING' } } });
    const run = await runActivity(() => emrActivities(deps).watchStreamingJob({ jobName: 'ingest', maxWaitSeconds: 3600 }), { cancel: { afterHeartbeats: 2, how: 'workflow' } });
    assert.ok(run.error);
    assert.equal(mocks.emr.commandCalls(CancelStepsCommand).length, 0);
  });

  test('stop interrupts the step and waits for it to end within the grace', async () => {
    const { deps, mocks } = mockedAwsDeps();
    mocks.emr.on(ListStepsCommand).resolves({ Steps: [{ Id: 's-RUN', Name: NAME, Status: { State: 'RUNNING' } }] });
    mocks.emr.on(CancelStepsCommand).resolves({ CancelStepsInfoList: [{ StepId: 's-RUN', Status: 'SUBMITTED' }] });
    mocks.emr
      .on(DescribeStepCommand)
      .resolvesOnce({ Step: { Id: 's-RUN', Status: { State: 'CANCEL_PENDING' } } })
      .resolves({ Step: { Id: 's-RUN', Status: { State: 'CANCELLED' } } });
    const run = await runActivity(() => emrActivities(deps).stopStreamingJob({ jobName: 'ingest', graceSeconds: 60 }));
    assert.deepEqual(run.result, { jobName: 'ingest', state: 'stopped', remoteId: 's-RUN' });
    assert.deepEqual(mocks.emr.commandCalls(CancelStepsCommand).map((c) => c.args[0].input), [{ ClusterId: 'j-TESTCLUSTER1', StepIds: ['s-RUN'], StepCancellationOption: 'SEND_INTERRUPT' }]);
  });

  test('stop terminates the process when the grace runs out', async () => {
    const { deps, mocks } = mockedAwsDeps();
    mocks.emr.on(ListStepsCommand).resolves({ Steps: [{ Id: 's-RUN', Name: NAME, Status: { State: 'RUNNING' } }] });
    mocks.emr.on(CancelStepsCommand).resolves({ CancelStepsInfoList: [{ StepId: 's-RUN', Status: 'SUBMITTED' }] });
    mocks.emr
      .on(DescribeStepCommand)
      .resolvesOnce({ Step: { Id: 's-RUN', Status: { State: 'RUNNING' } } })
      .resolves({ Step: { Id: 's-RUN', Status: { State: 'CANCELLED' } } });
    const run = await runActivity(() => emrActivities(deps).stopStreamingJob({ jobName: 'ingest', graceSeconds: 0 }));
    assert.equal(run.result?.state, 'stopped');
    assert.deepEqual(mocks.emr.commandCalls(CancelStepsCommand).map((c) => c.args[0].input.StepCancellationOption), ['SEND_INTERRUPT', 'TERMINATE_PROCESS']);
  });

  test('stop of a job with no active step reports its last state without cancelling', async () => {
    const { deps, mocks } = mockedAwsDeps();
    mocks.emr.on(ListStepsCommand).callsFake((input: { StepStates?: string[] }) => ({
      Steps: input.StepStates ? [] : [{ Id: 's-OLD', Name: NAME, Status: { State: 'COMPLETED' } }],
    }));
    const run = await runActivity(() => emrActivities(deps).stopStreamingJob({ jobName: 'ingest', graceSeconds: 5 }));
    assert.equal(mocks.emr.commandCalls(CancelStepsCommand).length, 0);
    assert.deepEqual(run.result, { jobName: 'ingest', state: 'succeeded', remoteId: 's-OLD' });
  });

  test('throttling on ListSteps is a retryable failure', async () => {
    const { deps, mocks } = mockedAwsDeps();
    mocks.emr.on(ListStepsCommand).rejects(sdkError('ThrottlingException'));
    await assert.rejects(emrActivities(deps).startStreamingJob(SPEC), (err: unknown) => err instanceof ApplicationFailure && !err.nonRetryable);
  });
});
