// The one mapping between the aws target's settings and the CloudFormation outputs of the CDK
// stack (infra/): the stack emits each output under this key, `smartcity aws config` reads them
// back into the config file. Both sides build on AWS_ENV, so a new setting needs no second list.
import { AWS_ENV } from './index';

export interface AwsOutput {
  /** The environment variable, e.g. SMARTCITY_S3_RAW_BUCKET. */
  env: string;
  /** The CloudFormation output key (letters and digits only), e.g. SmartcityS3RawBucket. */
  outputKey: string;
  /** Where the value lands in the SMARTCITY_CONFIG file, e.g. ['aws', 'buckets', 'raw']. */
  path: string[];
}

/** SMARTCITY_S3_RAW_BUCKET → SmartcityS3RawBucket (CloudFormation allows only [A-Za-z0-9] in keys). */
export function outputKeyOf(env: string): string {
  return env
    .toLowerCase()
    .split('_')
    .map((word) => word.charAt(0).toUpperCase() + word.slice(1))
    .join('');
}

export const AWS_OUTPUTS: readonly AwsOutput[] = Object.entries(AWS_ENV).map(([env, path]) => ({ env, outputKey: outputKeyOf(env), path }));

/** The output key of a setting; throws on a name that is not an aws setting (a typo in infra/). */
export function outputKey(env: string): string {
  const output = AWS_OUTPUTS.find((o) => o.env === env);
  if (!output) throw new Error(`${env} is not an aws setting (see AWS_ENV in config/index.ts)`);
  return output.outputKey;
}
