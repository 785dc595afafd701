// The one AWS client factory: every aws activity gets its SDK clients from here, built from the
// validated aws settings. Credentials come from the SDK's default chain only (environment,
// profile, instance/task role), so nothing secret ever passes through config or code.
import { AthenaClient } from '@aws-sdk/client-athena';
import { CloudWatchLogsClient } from '@aws-sdk/client-cloudwatch-logs';
import { EMRClient } from '@aws-sdk/client-emr';
import { GlueClient } from '@aws-sdk/client-glue';
import { RedshiftDataClient } from '@aws-sdk/client-redshift-data';
import { S3Client } from '@aws-sdk/client-s3';
import type { AwsSettings, Config } from '../../config';

export interface AwsClients {
  glue: GlueClient;
  emr: EMRClient;
  redshiftData: RedshiftDataClient;
  athena: AthenaClient;
  s3: S3Client;
  logs: CloudWatchLogsClient;
}

export function createAwsClients(aws: AwsSettings): AwsClients {
  const common = { region: aws.region, ...(aws.endpoint !== undefined && { endpoint: aws.endpoint }) };
  return {
    glue: new GlueClient(common),
    emr: new EMRClient(common),
    redshiftData: new RedshiftDataClient(common),
    athena: new AthenaClient(common),
    // An endpoint override (moto) serves every bucket on one host: virtual-hosted names would not resolve.
    s3: new S3Client({ ...common, forcePathStyle: aws.endpoint !== undefined }),
    logs: new CloudWatchLogsClient(common),
  };
}

export interface AwsDeps {
  config: Config;
  aws: AwsSettings;
  clients: AwsClients;
  /** Poll interval of waits; tests use a few ms. */
  pollIntervalMs: number;
}
