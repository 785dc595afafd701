// `smartcity aws config`: a deployed stack's outputs become the aws target's config file, which
// the real config loader accepts; nothing but names and ARNs is written; a stack that is missing,
// unsettled or not ours is one clear error. CloudFormation is mocked (aws-sdk-client-mock).
import { after, afterEach, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CloudFormationClient, DescribeStacksCommand, type DescribeStacksCommandOutput, type StackStatus } from '@aws-sdk/client-cloudformation';
import { mockClient } from 'aws-sdk-client-mock';
import { main } from '../../cli/main';
import { loadConfig } from '../../config';
import { AWS_OUTPUTS, outputKeyOf } from '../../config/aws-outputs';
import { AWS_TEST_ENV } from '../helpers/aws-mock';

const cfn = mockClient(CloudFormationClient);
const dir = mkdtempSync(join(tmpdir(), 'smartcity-aws-config-'));
const BROKERS = AWS_TEST_ENV.SMARTCITY_KAFKA_BROKERS!;

/** The outputs a deployed stack has for the settings of the aws test config. */
const STACK_OUTPUTS = AWS_OUTPUTS.filter((o) => AWS_TEST_ENV[o.env] !== undefined).map((o) => ({ OutputKey: o.outputKey, OutputValue: AWS_TEST_ENV[o.env], Description: o.env }));

function stack(outputs: { OutputKey: string; OutputValue?: string }[] = STACK_OUTPUTS, status: StackStatus = 'CREATE_COMPLETE'): DescribeStacksCommandOutput {
  return { $metadata: {}, Stacks: [{ StackName: 'Smartcity', StackStatus: status, CreationTime: new Date(), Outputs: outputs }] };
}

/** Runs `smartcity …` in-process; returns the exit code and what it printed. */
async function smartcity(args: string[], env: Record<string, string | undefined> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  const saved = { log: console.log, error: console.error, write: process.stdout.write.bind(process.stdout) };
  const savedEnv = Object.fromEntries(Object.keys(env).map((k) => [k, process.env[k]]));
  let stdout = '';
  let stderr = '';
  console.log = (...parts: unknown[]) => void (stdout += `${parts.join(' ')}\n`);
  console.error = (...parts: unknown[]) => void (stderr += `${parts.join(' ')}\n`);
  process.stdout.write = (chunk: string) => ((stdout += chunk), true);
  for (const [k, v] of Object.entries(env)) if (v === undefined) delete process.env[k];
  else process.env[k] = v;
  try {
    return { code: await main(args), stdout, stderr };
  } finally {
    console.log = saved.log;
    console.error = saved.error;
    process.stdout.write = saved.write;
    for (const [k, v] of Object.entries(savedEnv)) if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
}

describe('smartcity aws config', () => {
  let n = 0;
  const outFile = () => join(dir, `config-${++n}.json`);
  // The check after writing reads SMARTCITY_* from the environment: start from none of them.
  const cleanEnv = Object.fromEntries(Object.keys(process.env).filter((k) => k.startsWith('SMARTCITY_')).map((k) => [k, undefined]));

  before(() => cfn.reset());
  afterEach(() => cfn.reset());
  after(() => rmSync(dir, { recursive: true, force: true }));

  test('output keys: one per aws setting, letters and digits only, SMARTCITY_S3_RAW_BUCKET ⇄ SmartcityS3RawBucket', () => {
    assert.equal(outputKeyOf('SMARTCITY_S3_RAW_BUCKET'), 'SmartcityS3RawBucket');
    const keys = AWS_OUTPUTS.map((o) => o.outputKey);
    assert.equal(new Set(keys).size, keys.length);
    for (const key of keys) assert.match(key, /^[A-Za-z0-9]{1,255}$/);
  });

  test('writes a file the config loader accepts, with the same aws settings as the variables', async () => {
    cfn.on(DescribeStacksCommand, { StackName: 'Smartcity' }).resolves(stack());
    const out = outFile();
    const r = await smartcity(['aws', 'config', '--stack', 'Smartcity', '--region', 'eu-west-2', '--out', out], { ...cleanEnv, SMARTCITY_KAFKA_BROKERS: BROKERS });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, new RegExp(`wrote ${STACK_OUTPUTS.length} settings of stack Smartcity to .*\nstart the worker with: SMARTCITY_CONFIG=`));
    const fromFile = loadConfig({ SMARTCITY_CONFIG: out, SMARTCITY_KAFKA_BROKERS: BROKERS });
    assert.equal(fromFile.target, 'aws');
    assert.deepEqual(fromFile.aws, loadConfig(AWS_TEST_ENV).aws);
  });

  test('keeps the rest of an existing file and replaces its aws section whole', async () => {
    cfn.on(DescribeStacksCommand).resolves(stack());
    const out = outFile();
    writeFileSync(out, JSON.stringify({ target: 'local', kafka: { brokers: ['b-9.kafka.example:9096'] }, aws: { redshift: { clusterId: 'old-cluster' } } }));
    const r = await smartcity(['aws', 'config', '--stack', 'Smartcity', '--region', 'eu-west-2', '--out', out], cleanEnv);
    assert.equal(r.code, 0, r.stderr);
    const written = JSON.parse(readFileSync(out, 'utf8')) as { target: string; kafka: unknown; aws: { redshift: Record<string, string> } };
    assert.equal(written.target, 'aws');
    assert.deepEqual(written.kafka, { brokers: ['b-9.kafka.example:9096'] });
    assert.equal(written.aws.redshift.clusterId, undefined);
    assert.equal(written.aws.redshift.workgroup, 'smartcity');
  });

  test('writes only mapped outputs: no secret value, the Kafka secret by ARN', async () => {
    cfn.on(DescribeStacksCommand).resolves(stack([...STACK_OUTPUTS, { OutputKey: 'KafkaPassword', OutputValue: 'hunter2-not-for-files' }]));
    const r = await smartcity(['aws', 'config', '--stack', 'Smartcity', '--region', 'eu-west-2']);
    assert.equal(r.code, 0, r.stderr);
    assert.doesNotMatch(r.stdout, /hunter2|KafkaPassword|password/i);
    const printed = JSON.parse(r.stdout) as { aws: { kafkaSecretArn: string } };
    assert.equal(printed.aws.kafkaSecretArn, AWS_TEST_ENV.SMARTCITY_KAFKA_SECRET_ARN);
  });

  test('names what the worker still needs that no stack knows (the Kafka brokers)', async () => {
    cfn.on(DescribeStacksCommand).resolves(stack());
    const r = await smartcity(['aws', 'config', '--stack', 'Smartcity', '--region', 'eu-west-2', '--out', outFile()], cleanEnv);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stderr, /before starting the worker .*SMARTCITY_KAFKA_BROKERS/);
  });

  const failures: [string, () => void, RegExp][] = [
    [
      'a stack that does not exist',
      () => cfn.on(DescribeStacksCommand).rejects(Object.assign(new Error('Stack with id Smartcity does not exist'), { name: 'ValidationError' })),
      /stack "Smartcity" does not exist in eu-west-2: deploy it first/,
    ],
    ['a stack still deploying', () => cfn.on(DescribeStacksCommand).resolves(stack(STACK_OUTPUTS, 'UPDATE_IN_PROGRESS')), /stack Smartcity is UPDATE_IN_PROGRESS: its outputs are not final/],
    ['a stack that is not ours', () => cfn.on(DescribeStacksCommand).resolves(stack([{ OutputKey: 'WebsiteUrl', OutputValue: 'https://x' }])), /has none of the smartcity outputs/],
    [
      'an output that is no valid setting',
      () => cfn.on(DescribeStacksCommand).resolves(stack(STACK_OUTPUTS.map((o) => (o.OutputKey === 'SmartcityS3RawBucket' ? { ...o, OutputValue: 'Not_A_Bucket' } : o)))),
      /unusable outputs: SmartcityS3RawBucket: must be an S3 bucket name/,
    ],
    ['access denied', () => cfn.on(DescribeStacksCommand).rejects(Object.assign(new Error('not authorized to perform cloudformation:DescribeStacks'), { name: 'AccessDenied' })), /DescribeStacks on Smartcity: AccessDenied/],
  ];
  for (const [what, arrange, message] of failures) {
    test(`${what}: exit 1 with a clear error, nothing written`, async () => {
      arrange();
      const out = outFile();
      const r = await smartcity(['aws', 'config', '--stack', 'Smartcity', '--region', 'eu-west-2', '--out', out]);
      assert.equal(r.code, 1);
      assert.match(r.stderr, message);
      assert.throws(() => readFileSync(out), /ENOENT/);
    });
  }

  const usage: [string[], RegExp][] = [
    [['aws'], /which aws action\? \(config\)/],
    [['aws', 'deploy'], /unknown aws action "deploy"/],
    [['aws', 'config'], /--stack: is required/],
    [['aws', 'config', '--stack', 'Smartcity', '--region', 'Europe'], /--region "Europe": must be an AWS region/],
  ];
  for (const [args, message] of usage) {
    test(`\`smartcity ${args.join(' ')}\` exits 2`, async () => {
      const r = await smartcity(args);
      assert.equal(r.code, 2);
      assert.match(r.stderr, message);
      assert.equal(cfn.commandCalls(DescribeStacksCommand).length, 0);
    });
  }
});
