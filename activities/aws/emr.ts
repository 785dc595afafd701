// The streaming ingest job on the aws target: one EMR step (spark-submit through
// command-runner.jar) on the configured cluster, named after the job so a retried start finds the
// step it already added instead of adding a second one.
import { AddJobFlowStepsCommand, CancelStepsCommand, DescribeStepCommand, paginateListSteps, type Step, type StepSummary } from '@aws-sdk/client-emr';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { latestIngestProgress } from '../progress';
import type { IngestProgress, PipelineActivities, StreamingJobSpec, StreamingJobState } from '../types';
import type { AwsDeps } from './clients';
import { awsCall } from './errors';
import { runRemoteOperation } from './operation';
import { checkpointRoot, layerRoot, progressLocation, readText, s3Uri, scriptUri } from './s3';

/**
 * The EMR release the stack (infra/) creates clusters with, and the Spark version it ships. The
 * step's Kafka connector must match the cluster's Spark exactly, so both live here: when you move
 * EMR_RELEASE, look up its Spark version in the EMR release guide and change EMR_SPARK_VERSION.
 */
export const EMR_RELEASE = 'emr-7.10.0';
export const EMR_SPARK_VERSION = '3.5.5';
const KAFKA_PACKAGE = `org.apache.spark:spark-sql-kafka-0-10_2.12:${EMR_SPARK_VERSION}`;
const ACTIVE_STATES = ['PENDING', 'RUNNING'] as const;

export function stepName(jobName: string): string {
  return `smartcity-stream:${jobName}`;
}

/** spark-submit of the ingest job from the artifacts bucket; the Kafka password stays in Secrets Manager. */
export function ingestStepArgs(deps: AwsDeps, spec: StreamingJobSpec): string[] {
  const { aws, config } = deps;
  const progress = progressLocation(aws, spec.jobName);
  const args = [
    'spark-submit',
    '--deploy-mode',
    'cluster',
    '--packages',
    KAFKA_PACKAGE,
    '--py-files',
    scriptUri(aws, 'pyFiles'),
    scriptUri(aws, 'streamIngestScript'),
    '--raw-root',
    layerRoot(aws, 'raw'),
    '--quarantine-root',
    layerRoot(aws, 'quarantine'),
    '--checkpoint',
    checkpointRoot(aws, spec.jobName),
    '--progress-file',
    s3Uri(progress.bucket, progress.key),
    '--schemas-dir',
    scriptUri(aws, 'schemasDir'),
    '--brokers',
    config.kafka.brokers.join(','),
    '--trigger-seconds',
    String(spec.triggerSeconds),
  ];
  if (spec.maxOffsetsPerTrigger !== undefined) args.push('--max-offsets-per-trigger', String(spec.maxOffsetsPerTrigger));
  if (aws.kafkaSecretArn !== undefined) args.push('--kafka-secret-id', aws.kafkaSecretArn, '--kafka-sasl-mechanism', config.kafka.sasl?.mechanism ?? 'scram-sha-512');
  return args;
}

function stateOf(jobName: string, step: Step | StepSummary): StreamingJobState {
  const status = step.Status;
  const s = status?.State;
  const state: StreamingJobState['state'] =
    s === 'PENDING' || s === 'RUNNING' || s === 'CANCEL_PENDING' ? 'running' : s === 'COMPLETED' ? 'succeeded' : s === 'FAILED' ? 'failed' : s === 'CANCELLED' || s === 'INTERRUPTED' ? 'stopped' : 'unknown';
  const f = status?.FailureDetails;
  const failure =
    state === 'failed' ? [`EMR step ${step.Id} failed: ${f?.Reason ?? 'no reason given'}`, f?.Message, f?.LogFile && `log file: ${f.LogFile}`].filter(Boolean).join('\n') : undefined;
  return { jobName, state, ...(step.Id !== undefined && { remoteId: step.Id }), ...(failure !== undefined && { failure }) };
}

const TERMINAL = (state: StreamingJobState['state']) => state !== 'running';

export function emrActivities(deps: AwsDeps): Pick<PipelineActivities, 'startStreamingJob' | 'watchStreamingJob' | 'stopStreamingJob'> {
  const cluster = deps.aws.emr.clusterId;

  /**
   * The newest step of the job: an active one when `active`, else whatever state it ended in.
   * Steps come newest first, 50 a page: on a busy cluster the job's step may be on a later page.
   */
  async function latestStep(jobName: string, active: boolean): Promise<StepSummary | undefined> {
    return awsCall(`elasticmapreduce:ListSteps on cluster ${cluster}`, async () => {
      for await (const page of paginateListSteps({ client: deps.clients.emr }, { ClusterId: cluster, ...(active && { StepStates: [...ACTIVE_STATES] }) })) {
        const step = (page.Steps ?? []).find((s) => s.Name === stepName(jobName));
        if (step) return step;
      }
      return undefined;
    });
  }

  async function describe(jobName: string, stepId: string): Promise<StreamingJobState> {
    const res = await awsCall(`elasticmapreduce:DescribeStep on cluster ${cluster}`, () => deps.clients.emr.send(new DescribeStepCommand({ ClusterId: cluster, StepId: stepId })));
    if (!res.Step) throw ApplicationFailure.nonRetryable(`elasticmapreduce:DescribeStep returned no step ${stepId} on cluster ${cluster}`, 'Aws.ResourceNotFoundException');
    return stateOf(jobName, res.Step);
  }

  async function cancelStep(stepId: string, option: 'SEND_INTERRUPT' | 'TERMINATE_PROCESS'): Promise<void> {
    const res = await awsCall(`elasticmapreduce:CancelSteps on cluster ${cluster}`, () =>
      deps.clients.emr.send(new CancelStepsCommand({ ClusterId: cluster, StepIds: [stepId], StepCancellationOption: option })),
    );
    const info = res.CancelStepsInfoList?.[0];
    if (info?.Status === 'FAILED') throw ApplicationFailure.retryable(`EMR refused to cancel step ${stepId}: ${info.Reason ?? 'no reason given'}`, 'Emr.CancelStepFailed');
  }

  /**
   * Waits for the step to end or the deadline (kept in the heartbeat, so a retry keeps the same
   * deadline). Nothing to stop on cancellation: the supervisor stops the job with stopStreamingJob.
   */
  function waitForStep(jobName: string, stepId: string, seconds: number, onDeadline: (last: StreamingJobState) => Promise<StreamingJobState>) {
    return runRemoteOperation<{ stepId: string; deadline: number }, StreamingJobState>(deps, {
      what: `EMR step ${stepId} (${stepName(jobName)}) on cluster ${cluster}`,
      start: () => Promise.resolve({ stepId, deadline: Date.now() + seconds * 1000 }),
      async poll(handle) {
        const state = await describe(jobName, handle.stepId);
        if (TERMINAL(state.state)) return { done: true, result: state };
        if (Date.now() >= handle.deadline) return { done: true, result: await onDeadline(state) };
        return { done: false, progress: { state: state.state } };
      },
      cancel: () => Promise.resolve(),
    });
  }

  /**
   * The latest micro-batch from the job's progress object (the step was given its location).
   * Progress only resets the supervisor's backoff: a failed read is logged, never a failed watch.
   */
  async function lastProgress(jobName: string): Promise<IngestProgress | undefined> {
    const { bucket, key } = progressLocation(deps.aws, jobName);
    try {
      const text = await readText(deps, bucket, key);
      return text === undefined ? undefined : latestIngestProgress(text);
    } catch (err) {
      Context.current().log.warn('cannot read the streaming job\'s progress', { jobName, location: s3Uri(bucket, key), error: (err as Error).message });
      return undefined;
    }
  }

  return {
    async startStreamingJob(spec) {
      const running = await latestStep(spec.jobName, true);
      if (running) return stateOf(spec.jobName, running);
      const res = await awsCall(`elasticmapreduce:AddJobFlowSteps on cluster ${cluster}`, () =>
        deps.clients.emr.send(
          new AddJobFlowStepsCommand({
            JobFlowId: cluster,
            Steps: [{ Name: stepName(spec.jobName), ActionOnFailure: 'CONTINUE', HadoopJarStep: { Jar: 'command-runner.jar', Args: ingestStepArgs(deps, spec) } }],
          }),
        ),
      );
      const stepId = res.StepIds?.[0];
      if (!stepId) throw ApplicationFailure.retryable(`elasticmapreduce:AddJobFlowSteps on cluster ${cluster} returned no step id`, 'Aws.NoStepId');
      return { jobName: spec.jobName, state: 'running', remoteId: stepId };
    },

    /** Waits like the local watch, then reports the step's state with the job's latest micro-batch. */
    async watchStreamingJob({ jobName, maxWaitSeconds }) {
      const step = await latestStep(jobName, false);
      if (!step?.Id) return { jobName, state: 'unknown' };
      const state = await waitForStep(jobName, step.Id, maxWaitSeconds, (last) => Promise.resolve(last));
      const progress = await lastProgress(jobName);
      return progress ? { ...state, lastProgress: progress } : state;
    },

    async stopStreamingJob({ jobName, graceSeconds }) {
      const step = await latestStep(jobName, true);
      if (!step?.Id) {
        const last = await latestStep(jobName, false);
        return last ? stateOf(jobName, last) : { jobName, state: 'unknown' };
      }
      const stepId = step.Id;
      // Interrupt first: the job stops after its running micro-batch; the grace bounds that wait.
      if (Context.current().info.heartbeatDetails === undefined) await cancelStep(stepId, 'SEND_INTERRUPT');
      return waitForStep(jobName, stepId, graceSeconds, async () => {
        await cancelStep(stepId, 'TERMINATE_PROCESS');
        return describe(jobName, stepId);
      });
    },
  };
}
