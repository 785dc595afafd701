// The CDK stack, synthesized in-process once (a new EMR cluster, Redshift Serverless), held to the
// issue's rules: nothing public, everything encrypted and TLS-only, no `*` permissions, crawlers
// that skip Spark's metadata, the right trust, a worker policy that covers every SDK call the aws
// activities make, and outputs that are the aws target's settings.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import { GLUE_VERSION, ICEBERG_JOB_ARGUMENTS, SmartcityStack } from '../../infra/stack';
import { SPARK_ARTIFACTS } from '../../infra/spark-bundle';
import {
  activitySdkCalls,
  allProblems,
  bucketProblems,
  crawlerProblems,
  EXPECTED_OUTPUTS,
  iamProblems,
  outputProblems,
  requiredWorkerActions,
  resourcesOfType,
  sdkCallsIn,
  trustProblems,
  workerCoverageProblems,
  workerExcessProblems,
  workerStatements,
  type BucketPolicyProps,
  type BucketProps,
  type CfnTemplate,
  type CrawlerProps,
  type PolicyProps,
  type RoleProps,
} from './template-checks';

/** The statements of a role's default policy (CDK's `<Role>DefaultPolicy…`). */
const roleStatements = (t: CfnTemplate, role: string) => {
  const found = resourcesOfType<PolicyProps>(t, 'AWS::IAM::Policy').filter(([id]) => id.startsWith(`${role}DefaultPolicy`));
  assert.equal(found.length, 1, `one default policy of ${role}`);
  return [found[0]![1].PolicyDocument.Statement].flat();
};
const actionsOf = (s: { Action?: string | string[] }) => [s.Action ?? []].flat();
/** A resource as text with CloudFormation's pseudo parameters and references reduced to their names. */
const resourceText = (r: unknown) => JSON.stringify(r).replace(/\{"Ref":"AWS::(\w+)"\}/g, '$1').replace(/\{"Fn::GetAtt":\["(\w+?)[0-9A-F]{8}","Arn"\]\}/g, '$1');

/** A deep copy to tamper with: each check must catch its own kind of mistake. */
const copy = (t: CfnTemplate): CfnTemplate => structuredClone(t);
const firstOfType = <P>(t: CfnTemplate, type: string): P => resourcesOfType<P>(t, type)[0]![1];

interface GlueJobProps {
  Command: { ScriptLocation: unknown };
  DefaultArguments: Record<string, unknown>;
  GlueVersion: string;
  ExecutionProperty: { MaxConcurrentRuns: number };
}

describe('infra stack (synthesized in-process)', () => {
  let template: CfnTemplate;
  let assertions: Template;

  const outdir = mkdtempSync(join(tmpdir(), 'smartcity-stack-'));

  before(() => {
    // Asset staging off: nothing is copied, the template is the same.
    const app = new App({ outdir, context: { 'aws:cdk:disable-asset-staging': true } });
    const stack = new SmartcityStack(app, 'Smartcity', {
      env: { account: '123456789012', region: 'eu-west-2' },
      emr: { subnetId: 'subnet-0abc1234' },
      redshift: { serverless: {} },
    });
    assertions = Template.fromStack(stack);
    template = assertions.toJSON() as CfnTemplate;
  });

  after(() => rmSync(outdir, { recursive: true, force: true }));

  test('six buckets, none public, each encrypted, TLS-only and ACL-free', () => {
    assert.equal(resourcesOfType(template, 'AWS::S3::Bucket').length, 6);
    assert.deepEqual(bucketProblems(template), []);
  });

  test('the bucket check catches a public, unencrypted or plain-HTTP bucket', () => {
    const t = copy(template);
    const bucket = firstOfType<BucketProps>(t, 'AWS::S3::Bucket');
    bucket.PublicAccessBlockConfiguration!.RestrictPublicBuckets = false;
    delete bucket.BucketEncryption;
    for (const [, policy] of resourcesOfType<BucketPolicyProps>(t, 'AWS::S3::BucketPolicy')) policy.PolicyDocument.Statement = [{ Effect: 'Allow', Principal: '*', Action: 's3:GetObject', Resource: '*' }];
    const problems = bucketProblems(t).join('\n');
    assert.match(problems, /RestrictPublicBuckets is not true/);
    assert.match(problems, /no default encryption/);
    assert.match(problems, /no bucket policy denies requests without TLS/);
    assert.match(problems, /bucket policy allows everyone/);
  });

  test('lifecycle: transient data expires (quarantine, Athena results, EMR logs, Glue temp), checkpoints never', () => {
    const rulesOf = (prefix: string) => {
      const found = resourcesOfType<BucketProps>(template, 'AWS::S3::Bucket').find(([id]) => id.startsWith(prefix));
      assert.ok(found, prefix);
      return (found[1].LifecycleConfiguration?.Rules ?? []).filter((r) => r.ExpirationInDays !== undefined);
    };
    assert.deepEqual(rulesOf('QuarantineBucket').map((r) => r.ExpirationInDays), [90]);
    assert.deepEqual(rulesOf('AthenaResultsBucket').map((r) => r.ExpirationInDays), [7]);
    assert.deepEqual(rulesOf('ArtifactsBucket').map((r) => [r.Prefix, r.ExpirationInDays]), [['emr-logs/', 30], ['glue-temp/', 7]]);
    for (const kept of ['RawBucket', 'CuratedBucket', 'CheckpointsBucket']) assert.deepEqual(rulesOf(kept), [], `${kept} must keep its data`);
  });

  test('no IAM statement allows * actions; Resource "*" only where AWS requires it', () => {
    assert.deepEqual(iamProblems(template), []);
  });

  test('the IAM check catches s3:*, Resource "*" and a broad AWS managed policy', () => {
    const t = copy(template);
    const worker = firstOfType<PolicyProps>(t, 'AWS::IAM::ManagedPolicy');
    worker.PolicyDocument.Statement = [
      ...[worker.PolicyDocument.Statement].flat(),{ Effect: 'Allow', Action: 's3:*', Resource: 'arn:aws:s3:::x' }, { Effect: 'Allow', Action: 'glue:StartCrawler', Resource: '*' },
    ];
    firstOfType<RoleProps>(t, 'AWS::IAM::Role').ManagedPolicyArns = ['arn:aws:iam::aws:policy/AdministratorAccess'];
    const problems = iamProblems(t).join('\n');
    assert.match(problems, /allows s3:\*/);
    assert.match(problems, /glue:StartCrawler on Resource "\*"/);
    assert.match(problems, /AWS managed policy AdministratorAccess/);
  });

  test('trust policies name the right service principals', () => {
    assert.deepEqual(trustProblems(template), []);
    const t = copy(template);
    const [id, role] = resourcesOfType<RoleProps>(t, 'AWS::IAM::Role').find(([rid]) => rid.startsWith('EmrInstanceRole'))!;
    [role.AssumeRolePolicyDocument.Statement].flat()[0]!.Principal = { Service: 'lambda.amazonaws.com' };
    assert.match(trustProblems(t).join('\n'), new RegExp(`${id}: trusts Service:lambda.amazonaws.com; expected Service:ec2.amazonaws.com`));
  });

  test('crawlers: raw_ and curated_ tables, _spark_metadata and checkpoints excluded, explicit schema-change policy', () => {
    assert.deepEqual(crawlerProblems(template), []);
    const t = copy(template);
    const crawler = firstOfType<CrawlerProps>(t, 'AWS::Glue::Crawler');
    crawler.Targets!.S3Targets![0]!.Exclusions = ['**/_temporary/**'];
    delete crawler.SchemaChangePolicy;
    const problems = crawlerProblems(t).join('\n');
    assert.match(problems, /does not exclude _spark_metadata\/\*\*/);
    assert.match(problems, /does not exclude \*\*\/checkpoints\/\*\*/);
    assert.match(problems, /no explicit schema-change policy/);
  });

  test('the curate job runs curate.py from the artifacts bucket, one run at a time, the bundle deployed first', () => {
    const job = firstOfType<GlueJobProps>(template, 'AWS::Glue::Job');
    assert.match(JSON.stringify(job.Command.ScriptLocation), new RegExp(`"/${SPARK_ARTIFACTS.curateScript}"`));
    assert.match(JSON.stringify(job.DefaultArguments['--extra-py-files']), new RegExp(`"/${SPARK_ARTIFACTS.pyFiles}"`));
    assert.equal(job.GlueVersion, '5.1');
    assert.equal(job.ExecutionProperty.MaxConcurrentRuns, 1);
    const [deploymentId, deployment] = resourcesOfType<{ DestinationBucketKeyPrefix: string }>(template, 'Custom::CDKBucketDeployment')[0]!;
    assert.equal(deployment.DestinationBucketKeyPrefix, SPARK_ARTIFACTS.prefix);
    assert.ok(template.Resources.CurateJob!.DependsOn!.includes(deploymentId), 'the job must wait for its script');
  });

  test('the curate job runs on Glue 5.1 (Iceberg 1.10.0) with Iceberg\'s jars and SQL extensions, which its script cannot set', () => {
    const job = firstOfType<GlueJobProps>(template, 'AWS::Glue::Job');
    assert.equal(GLUE_VERSION, '5.1');
    assert.equal(job.DefaultArguments['--datalake-formats'], 'iceberg');
    assert.equal(job.DefaultArguments['--conf'], 'spark.sql.extensions=org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions');
    assert.deepEqual(ICEBERG_JOB_ARGUMENTS, { '--datalake-formats': 'iceberg', '--conf': job.DefaultArguments['--conf'] });
  });

  test('the curate job role: Iceberg\'s Glue catalog calls on the stack\'s database and its tables only, read/write of the curated bucket', () => {
    const statements = roleStatements(template, 'CurateJobRole');
    const glue = statements.filter((s) => actionsOf(s).some((a) => a.startsWith('glue:')));
    assert.equal(glue.length, 1);
    assert.deepEqual(actionsOf(glue[0]!).sort(), ['glue:CreateTable', 'glue:GetDatabase', 'glue:GetTable', 'glue:UpdateTable']);
    assert.deepEqual([glue[0]!.Resource].flat().map(resourceText), [
      '{"Fn::Join":["",["arn:",Partition,":glue:",Region,":",AccountId,":catalog"]]}',
      '{"Fn::Join":["",["arn:",Partition,":glue:",Region,":",AccountId,":database/smartcity"]]}',
      '{"Fn::Join":["",["arn:",Partition,":glue:",Region,":",AccountId,":table/smartcity/*"]]}',
    ]);
    const curated = statements.filter((s) => resourceText(s.Resource).includes('CuratedBucket'));
    assert.equal(curated.length, 1);
    for (const action of ['s3:GetObject*', 's3:List*', 's3:PutObject', 's3:DeleteObject*']) assert.ok(actionsOf(curated[0]!).includes(action), action);
    assert.deepEqual([curated[0]!.Resource].flat().map(resourceText), ['CuratedBucket', '{"Fn::Join":["",[CuratedBucket,"/*"]]}'], 'the tables live at the bucket\'s root');
  });

  test('EMR: the cluster runs Spark with our roles; the service role may pass only the nodes\' role', () => {
    assertions.hasResourceProperties('AWS::EMR::Cluster', {
      ReleaseLabel: 'emr-7.10.0',
      Applications: [{ Name: 'Spark' }],
      Instances: { Ec2SubnetId: 'subnet-0abc1234', KeepJobFlowAliveWhenNoSteps: true },
    });
    // pyarrow and pandas on every node (the ingest job's mapInArrow), from the Spark artifacts.
    const cluster = firstOfType<{ BootstrapActions?: { ScriptBootstrapAction: { Path: unknown } }[] }>(template, 'AWS::EMR::Cluster');
    const paths = (cluster.BootstrapActions ?? []).map((b) => JSON.stringify(b.ScriptBootstrapAction.Path));
    assert.equal(paths.length, 1, 'one bootstrap action');
    assert.ok(paths[0]!.includes(SPARK_ARTIFACTS.emrBootstrap), `the bootstrap action runs ${SPARK_ARTIFACTS.emrBootstrap}: ${paths[0]}`);
    const pass = resourcesOfType<PolicyProps>(template, 'AWS::IAM::Policy').flatMap(([, p]) => [p.PolicyDocument.Statement].flat()).filter((s) => s.Action === 'iam:PassRole');
    assert.equal(pass.length, 1);
    assert.match(JSON.stringify(pass[0]!.Resource), /EmrInstanceRole/);
  });

  test('Athena workgroup enforces its result location, encryption and a bytes-scanned limit', () => {
    assertions.hasResourceProperties('AWS::Athena::WorkGroup', {
      WorkGroupConfiguration: {
        EnforceWorkGroupConfiguration: true,
        BytesScannedCutoffPerQuery: 10 * 1024 ** 3,
        ResultConfiguration: { EncryptionConfiguration: { EncryptionOption: 'SSE_S3' } },
      },
    });
  });

  test('Redshift Serverless: the admin password is managed by Redshift; the external schema\'s role reads the Glue database and the curated bucket only', () => {
    assertions.hasResourceProperties('AWS::RedshiftServerless::Namespace', { ManageAdminPassword: true, DbName: 'smartcity' });
    assertions.hasResourceProperties('AWS::RedshiftServerless::Workgroup', { PubliclyAccessible: false });
    const statements = roleStatements(template, 'RedshiftCopyRole');
    const text = JSON.stringify(statements);
    assert.match(text, /CuratedBucket/);
    assert.doesNotMatch(text, /RawBucket|QuarantineBucket|ArtifactsBucket|CheckpointsBucket|Put|Delete|Create|Update/);
    const glue = statements.filter((s) => actionsOf(s).some((a) => a.startsWith('glue:')));
    assert.deepEqual(glue.flatMap(actionsOf).sort(), ['glue:GetDatabase', 'glue:GetTable', 'glue:GetTables']);
    assert.deepEqual([glue[0]!.Resource].flat().map(resourceText).map((r) => /:(catalog|database\/\w+|table\/\w+\/\*)"/.exec(r)?.[1]), ['catalog', 'database/smartcity', 'table/smartcity/*']);
  });

  test('the worker may run the raw crawler only: nothing crawls the curated Iceberg tables', () => {
    const crawlers = workerStatements(template).filter((s) => s.Sid === 'GlueCrawlers');
    assert.equal(crawlers.length, 1);
    const resources = [crawlers[0]!.Resource].flat().map(resourceText);
    assert.equal(resources.length, 1);
    assert.match(resources[0]!, /crawler\/",\{"Ref":"RawCrawler/);
  });

  test('nothing secret in the template: the Kafka secret is generated, no password property is set', () => {
    const text = JSON.stringify(template);
    assert.doesNotMatch(text, /"(MasterUserPassword|AdminUserPassword|SecretString|AWS_SECRET_ACCESS_KEY)"/);
    assertions.hasResourceProperties('AWS::SecretsManager::Secret', { GenerateSecretString: { GenerateStringKey: 'password' } });
  });

  test('outputs are exactly the aws settings the stack defines, keyed as config/aws-outputs.ts says', () => {
    assert.deepEqual(outputProblems(template, EXPECTED_OUTPUTS.serverless), []);
    assert.match(outputProblems(template, [...EXPECTED_OUTPUTS.serverless, 'SMARTCITY_REDSHIFT_SCHEMA']).join('\n'), /expected/);
  });

  test('the SDK-call scan reads imported commands and paginators, not types', () => {
    const source = [
      "import { GetObjectCommand, type ListObjectsV2CommandOutput, paginateListObjectsV2 } from '@aws-sdk/client-s3';",
      "import type { StartCrawlerCommand } from '@aws-sdk/client-glue';",
      "import * as emr from '@aws-sdk/client-emr';",
      'await client.send(new emr.AddJobFlowStepsCommand({}));',
    ].join('\n');
    assert.deepEqual(
      sdkCallsIn(source, 'x.ts').map((c) => `${c.client}:${c.operation}`),
      ['s3:GetObject', 's3:ListObjectsV2', 'emr:AddJobFlowSteps'],
    );
  });

  test('the worker policy allows every API the aws activities call, on named resources', () => {
    const calls = activitySdkCalls();
    const needed = requiredWorkerActions(calls, 'serverless');
    assert.deepEqual(workerCoverageProblems(workerStatements(template), needed), []);
    // A call the policy does not cover is caught.
    const more = requiredWorkerActions([...calls, { client: 'glue', operation: 'DeleteTable', file: 'new.ts' }], 'serverless');
    assert.deepEqual(workerCoverageProblems(workerStatements(template), more), ['glue:DeleteTable (DeleteTable in new.ts) is not allowed by the worker policy']);
  });

  test('the worker policy allows nothing the activities do not call (or the calls imply)', () => {
    assert.deepEqual(workerExcessProblems(workerStatements(template), activitySdkCalls()), []);
  });

  test('every check passes together (the CLI synth test reuses them)', () => {
    assert.deepEqual(allProblems(template), []);
  });
});
