// `smartcity aws config`: the aws target's configuration, read from a deployed stack's outputs
// (infra/), so nobody copies bucket names by hand. Outputs map one-to-one onto settings through
// config/aws-outputs.ts. Only names and ARNs are written: the stack outputs no secret, and the
// Kafka credentials stay in Secrets Manager (the file holds the secret's ARN).
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { CloudFormationClient, DescribeStacksCommand } from '@aws-sdk/client-cloudformation';
import { z } from 'zod';
import { ConfigError, fileSchema, loadConfig, setPath } from '../config';
import { AWS_OUTPUTS } from '../config/aws-outputs';
import { parseCommandLine, UsageError } from './args';

export const AWS_USAGE = `smartcity aws config --stack <name> [--region <region>] [--out <file>]

  Writes the aws target's settings (the SMARTCITY_CONFIG file: "target": "aws" and the "aws"
  section) from the outputs of a deployed smartcity stack (infra/, see docs/aws.md, "Deploy to AWS").
  Credentials: the AWS SDK's default chain (AWS_PROFILE, environment, SSO, instance role).

  --stack <name>     the CloudFormation stack (default name of the CDK app: Smartcity)
  --region <region>  where it is deployed (default: AWS_REGION / the profile's region)
  --out <file>       write here, keeping the file's other sections (kafka, temporal, …);
                     default: print the JSON on stdout

  Nothing secret is written: the Kafka credentials stay in Secrets Manager, the file names the
  secret's ARN. Then: SMARTCITY_CONFIG=<file> smartcity worker`;

const options = { stack: { type: 'string' }, region: { type: 'string' }, out: { type: 'string' } } as const;
const optionsSchema = z.object({
  stack: z.string({ error: 'is required' }).regex(/^[A-Za-z][A-Za-z0-9-]*$|^arn:aws[a-z-]*:cloudformation:/, 'must be a stack name or ARN'),
  region: z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/, 'must be an AWS region such as eu-west-2').optional(),
  out: z.string().min(1).optional(),
});

/** Statuses in which a stack's outputs describe what is deployed. */
const SETTLED = new Set(['CREATE_COMPLETE', 'UPDATE_COMPLETE', 'UPDATE_ROLLBACK_COMPLETE', 'IMPORT_COMPLETE', 'IMPORT_ROLLBACK_COMPLETE']);

const describeStacksSchema = z.object({
  Stacks: z
    .array(
      z.object({
        StackName: z.string(),
        StackStatus: z.string(),
        Outputs: z.array(z.object({ OutputKey: z.string().optional(), OutputValue: z.string().optional() })).optional(),
      }),
    )
    .min(1),
});

async function describeStack(stack: string, region: string | undefined): Promise<z.infer<typeof describeStacksSchema>['Stacks'][number]> {
  const client = new CloudFormationClient(region !== undefined ? { region } : {});
  let response: unknown;
  try {
    response = await client.send(new DescribeStacksCommand({ StackName: stack }));
  } catch (err) {
    const e = err as Error;
    if (/region is missing/i.test(e.message)) throw new UsageError('no AWS region: pass --region or set AWS_REGION');
    if (e.name === 'CredentialsProviderError') throw new Error(`no AWS credentials found (AWS_PROFILE, environment, SSO, instance role): ${e.message}`);
    if (e.name === 'ValidationError' && /does not exist/.test(e.message)) {
      throw new Error(`stack "${stack}" does not exist in ${await client.config.region()}: deploy it first (docs/aws.md, "Deploy to AWS") or pass --region`);
    }
    throw new Error(`cloudformation:DescribeStacks on ${stack}: ${e.name}: ${e.message}`);
  } finally {
    client.destroy();
  }
  const parsed = describeStacksSchema.safeParse(response);
  if (!parsed.success) throw new Error(`unexpected DescribeStacks answer for ${stack}: ${z.prettifyError(parsed.error)}`);
  return parsed.data.Stacks[0]!;
}

/** The aws target's file settings from a stack's outputs; outputs that are no setting are ignored. */
export function configFromOutputs(outputs: { OutputKey?: string; OutputValue?: string }[]): Record<string, unknown> {
  const config: Record<string, unknown> = { target: 'aws' };
  const byKey = new Map(outputs.map((o) => [o.OutputKey, o.OutputValue]));
  for (const { outputKey, path } of AWS_OUTPUTS) {
    const value = byKey.get(outputKey);
    if (value !== undefined) setPath(config, path, value);
  }
  return config;
}

function readExisting(path: string): Record<string, unknown> {
  if (!existsSync(path)) return {};
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new Error(`${path} exists and is not JSON (${(err as Error).message}): move it away or pick another --out`);
  }
  const parsed = fileSchema.safeParse(json);
  if (!parsed.success) throw new Error(`${path} exists and is not a smartcity config file: ${z.prettifyError(parsed.error)}`);
  return parsed.data;
}

async function configCommand(argv: string[]): Promise<number> {
  const { values } = parseCommandLine(argv, options, optionsSchema);
  const stack = await describeStack(values.stack, values.region);
  if (!SETTLED.has(stack.StackStatus)) {
    throw new Error(`stack ${stack.StackName} is ${stack.StackStatus}: its outputs are not final; wait for the deployment to finish (or fix it) and run this again`);
  }
  const fromStack = configFromOutputs(stack.Outputs ?? []);
  if (fromStack.aws === undefined) {
    throw new Error(`stack ${stack.StackName} has none of the smartcity outputs (e.g. ${AWS_OUTPUTS[0]!.outputKey}): is it the stack of infra/?`);
  }
  const checked = fileSchema.safeParse(fromStack);
  if (!checked.success) {
    const outputOf = (path: PropertyKey[]) => AWS_OUTPUTS.find((o) => o.path.join('.') === path.join('.'))?.outputKey ?? path.join('.');
    throw new Error(`stack ${stack.StackName} has unusable outputs: ${checked.error.issues.map((i) => `${outputOf(i.path)}: ${i.message}`).join('; ')}`);
  }
  const settings = AWS_OUTPUTS.filter((o) => stack.Outputs?.some((s) => s.OutputKey === o.outputKey)).length;

  if (values.out === undefined) {
    process.stdout.write(`${JSON.stringify(checked.data, null, 2)}\n`);
    return 0;
  }
  const out = resolve(values.out);
  // The aws section is the stack's alone (a stale key from an earlier layout would conflict);
  // everything else in the file (kafka, temporal, …) is the user's and stays.
  const merged = { ...readExisting(out), ...checked.data };
  writeFileSync(out, `${JSON.stringify(merged, null, 2)}\n`);
  console.error(`wrote ${settings} settings of stack ${stack.StackName} to ${out}`);
  try {
    loadConfig({ ...process.env, SMARTCITY_CONFIG: out, SMARTCITY_TARGET: 'aws' });
    console.error(`start the worker with: SMARTCITY_CONFIG=${out} smartcity worker`);
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    console.error(`before starting the worker (SMARTCITY_CONFIG=${out} smartcity worker): ${err.message}`);
  }
  return 0;
}

export async function awsCommand(argv: string[]): Promise<number> {
  const [action, ...rest] = argv;
  if (action === 'config') return configCommand(rest);
  throw new UsageError(action === undefined ? 'which aws action? (config)' : `unknown aws action "${action}" (known: config)`);
}
