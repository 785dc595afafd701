// Unit-test harness for the aws activities: a validated aws Config, SDK clients whose `send` is
// replaced by aws-sdk-client-mock stubs, SDK-shaped errors, and a MockActivityEnvironment runner
// that records heartbeats and can cancel the activity (as a workflow would, or as a worker shutdown).
import { ActivityCancellationDetails } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { DefaultLogger } from '@temporalio/worker';
import type { Info } from '@temporalio/activity';
import { mockClient, type AwsClientStub } from 'aws-sdk-client-mock';
import type { AthenaClient } from '@aws-sdk/client-athena';
import type { CloudWatchLogsClient } from '@aws-sdk/client-cloudwatch-logs';
import type { EMRClient } from '@aws-sdk/client-emr';
import type { GlueClient } from '@aws-sdk/client-glue';
import type { RedshiftDataClient } from '@aws-sdk/client-redshift-data';
import type { S3Client } from '@aws-sdk/client-s3';
import { loadConfig, type Config } from '../../config';
import { createAwsClients, type AwsClients, type AwsDeps } from '../../activities/aws/clients';

/** Every required aws setting, with names the tests assert on. */
export const AWS_TEST_ENV: Record<string, string> = {
  SMARTCITY_TARGET: 'aws',
  SMARTCITY_KAFKA_BROKERS: 'b-1.kafka.example:9096,b-2.kafka.example:9096',
  SMARTCITY_AWS_REGION: 'eu-west-2',
  SMARTCITY_S3_RAW_BUCKET: 'sc-raw',
  SMARTCITY_S3_CURATED_BUCKET: 'sc-curated',
  SMARTCITY_S3_QUARANTINE_BUCKET: 'sc-quarantine',
  SMARTCITY_S3_CHECKPOINTS_BUCKET: 'sc-checkpoints',
  SMARTCITY_S3_ATHENA_RESULTS_BUCKET: 'sc-athena',
  SMARTCITY_S3_ARTIFACTS_BUCKET: 'sc-artifacts',
  SMARTCITY_GLUE_DATABASE: 'smartcity',
  SMARTCITY_GLUE_RAW_CRAWLER: 'smartcity-raw',
  SMARTCITY_GLUE_CURATED_CRAWLER: 'smartcity-curated',
  SMARTCITY_GLUE_CURATE_JOB: 'smartcity-curate',
  SMARTCITY_EMR_CLUSTER_ID: 'j-TESTCLUSTER1',
  SMARTCITY_REDSHIFT_WORKGROUP: 'smartcity',
  SMARTCITY_REDSHIFT_DATABASE: 'dev',
  SMARTCITY_REDSHIFT_COPY_ROLE_ARN: 'arn:aws:iam::123456789012:role/smartcity-copy',
  SMARTCITY_KAFKA_SECRET_ARN: 'arn:aws:secretsmanager:eu-west-2:123456789012:secret:smartcity-kafka-AbCdEf',
};

export function awsTestConfig(extra: Record<string, string> = {}): Config {
  return loadConfig({ ...AWS_TEST_ENV, ...extra });
}

export interface AwsMocks {
  glue: AwsClientStub<GlueClient>;
  emr: AwsClientStub<EMRClient>;
  redshiftData: AwsClientStub<RedshiftDataClient>;
  athena: AwsClientStub<AthenaClient>;
  s3: AwsClientStub<S3Client>;
  logs: AwsClientStub<CloudWatchLogsClient>;
}

/** Deps whose clients answer only what a test stubs (an unstubbed command resolves undefined). */
export function mockedAwsDeps(extra: Record<string, string> = {}): { deps: AwsDeps; mocks: AwsMocks } {
  const config = awsTestConfig(extra);
  const aws = config.aws!;
  const clients: AwsClients = createAwsClients(aws);
  const mocks: AwsMocks = {
    glue: mockClient(clients.glue),
    emr: mockClient(clients.emr),
    redshiftData: mockClient(clients.redshiftData),
    athena: mockClient(clients.athena),
    s3: mockClient(clients.s3),
    logs: mockClient(clients.logs),
  };
  return { deps: { config, aws, clients, pollIntervalMs: 2 }, mocks };
}

/** An error shaped like an SDK ServiceException (name = error code, $fault, $metadata). */
export function sdkError(code: string, opts: { status?: number; fault?: 'client' | 'server'; message?: string } = {}): Error {
  const status = opts.status ?? (opts.fault === 'server' ? 500 : 400);
  return Object.assign(new Error(opts.message ?? `${code} from the test`), {
    name: code,
    $fault: opts.fault ?? (status >= 500 ? 'server' : 'client'),
    $metadata: { httpStatusCode: status, requestId: 'test-request' },
  });
}

export type CancelHow = 'workflow' | 'worker-shutdown' | 'heartbeat-timeout';

export interface ActivityRun<R> {
  result?: R;
  error?: unknown;
  heartbeats: unknown[];
}

/**
 * Runs `fn` in a mock activity context; `heartbeatDetails` as left by a previous attempt;
 * `cancel` cancels the activity at its `afterHeartbeats`-th heartbeat, the way `how` says.
 */
export async function runActivity<R>(
  fn: () => Promise<R>,
  opts: { heartbeatDetails?: unknown; info?: Partial<Info>; cancel?: { afterHeartbeats: number; how: CancelHow } } = {},
): Promise<ActivityRun<R>> {
  const env = new MockActivityEnvironment(
    { ...opts.info, ...(opts.heartbeatDetails !== undefined && { heartbeatDetails: opts.heartbeatDetails }) },
    { logger: new DefaultLogger('ERROR') },
  );
  const heartbeats: unknown[] = [];
  env.on('heartbeat', (details: unknown) => {
    heartbeats.push(details);
    const c = opts.cancel;
    if (c && heartbeats.length === c.afterHeartbeats) {
      if (c.how === 'workflow') env.cancel('CANCELLED', new ActivityCancellationDetails({ cancelRequested: true }));
      else if (c.how === 'worker-shutdown') env.cancel('WORKER_SHUTDOWN', new ActivityCancellationDetails({ workerShutdown: true }));
      else env.cancel('TIMED_OUT', new ActivityCancellationDetails({ timedOut: true }));
    }
  });
  try {
    return { result: await env.run(fn), heartbeats };
  } catch (error) {
    return { error, heartbeats };
  }
}
