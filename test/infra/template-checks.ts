// Security and wiring checks over a synthesized CloudFormation template, shared by the in-process
// synth test and the `cdk synth` CLI test. Each check returns the problems it found (empty: fine),
// so a failing test names every offending resource at once.
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../config';
import { AWS_OUTPUTS } from '../../config/aws-outputs';
import { IMPLIED_ACTIONS, WILDCARD_RESOURCE_ACTIONS, iamActionsFor } from '../../infra/iam';

/** A synthesized template; Properties are read through the typed views below. */
export interface CfnTemplate {
  Resources: Record<string, { Type: string; Properties?: unknown; DependsOn?: string[] }>;
  Outputs?: Record<string, { Value: unknown; Description?: string }>;
}

export interface Statement {
  Effect: 'Allow' | 'Deny';
  Action?: string | string[];
  NotAction?: unknown;
  Resource?: unknown;
  NotResource?: unknown;
  Principal?: unknown;
  Condition?: { Bool?: Record<string, unknown> } & Record<string, unknown>;
  Sid?: string;
}

export interface PolicyDocument {
  Statement: Statement | Statement[];
}

// The properties these checks read, per resource type (CloudFormation's names).
export interface BucketProps {
  PublicAccessBlockConfiguration?: Record<string, unknown>;
  AccessControl?: string;
  WebsiteConfiguration?: unknown;
  BucketEncryption?: { ServerSideEncryptionConfiguration?: { ServerSideEncryptionByDefault?: { SSEAlgorithm?: string } }[] };
  OwnershipControls?: { Rules?: { ObjectOwnership?: string }[] };
  LifecycleConfiguration?: { Rules?: { Id?: string; Prefix?: string; ExpirationInDays?: number; AbortIncompleteMultipartUpload?: unknown }[] };
}
export interface BucketPolicyProps {
  Bucket: unknown;
  PolicyDocument: PolicyDocument;
}
export interface RoleProps {
  AssumeRolePolicyDocument: PolicyDocument;
  Policies?: { PolicyDocument: PolicyDocument }[];
  ManagedPolicyArns?: unknown[];
}
export interface PolicyProps {
  PolicyDocument: PolicyDocument;
  ManagedPolicyName?: string;
}
export interface CrawlerProps {
  TablePrefix?: string;
  Targets?: { S3Targets?: { Path: unknown; Exclusions?: string[] }[] };
  SchemaChangePolicy?: { UpdateBehavior?: string; DeleteBehavior?: string };
}

const list = <T>(v: T | T[] | undefined): T[] => (v === undefined ? [] : Array.isArray(v) ? v : [v]);

/** [logical id, properties] of every resource of the type, properties seen through the view P. */
export function resourcesOfType<P>(t: CfnTemplate, type: string): [string, P][] {
  return Object.entries(t.Resources)
    .filter(([, r]) => r.Type === type)
    .map(([id, r]) => [id, (r.Properties ?? {}) as P]);
}

/** Identity-policy statements (roles' inline policies, policies, managed policies) with where they live. */
export function identityStatements(t: CfnTemplate): { where: string; statement: Statement }[] {
  const out: { where: string; statement: Statement }[] = [];
  const add = (where: string, doc: PolicyDocument) => {
    for (const statement of list(doc.Statement)) out.push({ where: `${where}${statement.Sid ? `/${statement.Sid}` : ''}`, statement });
  };
  for (const type of ['AWS::IAM::Policy', 'AWS::IAM::ManagedPolicy']) for (const [id, p] of resourcesOfType<PolicyProps>(t, type)) add(id, p.PolicyDocument);
  for (const [id, role] of resourcesOfType<RoleProps>(t, 'AWS::IAM::Role')) for (const p of role.Policies ?? []) add(id, p.PolicyDocument);
  return out;
}

/** True when an IAM action pattern (with * and ?) matches the action. */
export function actionMatches(pattern: string, action: string): boolean {
  const regex = new RegExp(`^${pattern.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.')}$`, 'i');
  return regex.test(action);
}

const isRefTo = (value: unknown, logicalId: string) => JSON.stringify(value) === JSON.stringify({ Ref: logicalId });
const isPublicPrincipal = (p: unknown) => p === '*' || (typeof p === 'object' && p !== null && list((p as { AWS?: unknown }).AWS).includes('*'));

/** No public bucket; every bucket encrypted, TLS-only, owner-enforced, aborting stale uploads. */
export function bucketProblems(t: CfnTemplate): string[] {
  const problems: string[] = [];
  const policies = resourcesOfType<BucketPolicyProps>(t, 'AWS::S3::BucketPolicy');
  for (const [id, p] of resourcesOfType<BucketProps>(t, 'AWS::S3::Bucket')) {
    const block = p.PublicAccessBlockConfiguration ?? {};
    for (const key of ['BlockPublicAcls', 'BlockPublicPolicy', 'IgnorePublicAcls', 'RestrictPublicBuckets']) {
      if (block[key] !== true) problems.push(`${id}: PublicAccessBlockConfiguration.${key} is not true`);
    }
    if (p.AccessControl !== undefined && p.AccessControl !== 'Private') problems.push(`${id}: AccessControl ${p.AccessControl}`);
    if (p.WebsiteConfiguration !== undefined) problems.push(`${id}: serves a website`);
    const encryption = p.BucketEncryption?.ServerSideEncryptionConfiguration?.[0]?.ServerSideEncryptionByDefault?.SSEAlgorithm;
    if (encryption !== 'AES256' && encryption !== 'aws:kms' && encryption !== 'aws:kms:dsse') problems.push(`${id}: no default encryption`);
    if (p.OwnershipControls?.Rules?.[0]?.ObjectOwnership !== 'BucketOwnerEnforced') problems.push(`${id}: ACLs not disabled (ObjectOwnership)`);
    const rules = p.LifecycleConfiguration?.Rules ?? [];
    if (!rules.some((r) => r.AbortIncompleteMultipartUpload !== undefined)) problems.push(`${id}: incomplete multipart uploads are never aborted`);
    const statements = policies.filter(([, bp]) => isRefTo(bp.Bucket, id)).flatMap(([, bp]) => list(bp.PolicyDocument.Statement));
    const tlsOnly = statements.some(
      (s) => s.Effect === 'Deny' && isPublicPrincipal(s.Principal) && list(s.Action).includes('s3:*') && String(s.Condition?.Bool?.['aws:SecureTransport']) === 'false',
    );
    if (!tlsOnly) problems.push(`${id}: no bucket policy denies requests without TLS (aws:SecureTransport)`);
    for (const s of statements) if (s.Effect === 'Allow' && isPublicPrincipal(s.Principal)) problems.push(`${id}: bucket policy allows everyone (${JSON.stringify(s.Action)})`);
  }
  return problems;
}

/** The AWS managed policies the stack may attach; each carries permissions the template does not show. */
export const ALLOWED_MANAGED_POLICIES = [
  // the Lambda functions CDK adds (bucket deployment, auto-delete): write their own logs
  'service-role/AWSLambdaBasicExecutionRole',
  // EMR's service role as AWS defines it; acts only on resources tagged for EMR
  'service-role/AmazonEMRServicePolicy_v2',
];

/** No Allow of `*` or `service:*` actions; Resource "*" only for actions AWS authorizes on nothing else. */
export function iamProblems(t: CfnTemplate): string[] {
  const problems: string[] = [];
  for (const { where, statement: s } of identityStatements(t)) {
    if (s.Effect !== 'Allow') continue;
    if (s.NotAction !== undefined || s.NotResource !== undefined) problems.push(`${where}: Allow with NotAction/NotResource`);
    for (const action of list(s.Action)) if (action === '*' || /^[a-z0-9-]+:\*$/.test(action)) problems.push(`${where}: allows ${action}`);
    if (list(s.Resource).includes('*')) {
      for (const action of list(s.Action)) if (!WILDCARD_RESOURCE_ACTIONS.has(action)) problems.push(`${where}: ${action} on Resource "*" (not in WILDCARD_RESOURCE_ACTIONS)`);
    }
  }
  for (const [id, role] of resourcesOfType<RoleProps>(t, 'AWS::IAM::Role')) {
    for (const arn of role.ManagedPolicyArns ?? []) {
      const text = JSON.stringify(arn);
      const awsManaged = /:iam::aws:policy\/([^"]+)"/.exec(text)?.[1];
      if (awsManaged !== undefined && !ALLOWED_MANAGED_POLICIES.includes(awsManaged)) problems.push(`${id}: attaches AWS managed policy ${awsManaged}`);
    }
  }
  return problems;
}

/** Logical-id prefix of each role → the principals its trust policy must name, exactly. */
export const EXPECTED_TRUST: [RegExp, string[]][] = [
  [/^CrawlerRole/, ['Service:glue.amazonaws.com']],
  [/^CurateJobRole/, ['Service:glue.amazonaws.com']],
  [/^EmrInstanceRole/, ['Service:ec2.amazonaws.com']],
  [/^EmrServiceRole/, ['Service:elasticmapreduce.amazonaws.com']],
  [/^RedshiftCopyRole/, ['Service:redshift.amazonaws.com', 'Service:redshift-serverless.amazonaws.com']],
  [/^WorkerRole/, ['AWS:account-root']],
  [/^CustomCDKBucketDeployment/, ['Service:lambda.amazonaws.com']],
  [/^CustomS3AutoDeleteObjectsCustomResourceProviderRole/, ['Service:lambda.amazonaws.com']],
];

function principalsOf(statement: Statement): string[] {
  const out: string[] = [];
  for (const [kind, value] of Object.entries((statement.Principal ?? {}) as Record<string, unknown>)) {
    for (const v of list(value)) {
      const text = JSON.stringify(v);
      out.push(`${kind}:${kind === 'AWS' && /:root"(\]\]\})?$/.test(text) ? 'account-root' : typeof v === 'string' ? v : text}`);
    }
  }
  return out;
}

export function trustProblems(t: CfnTemplate): string[] {
  const problems: string[] = [];
  for (const [id, role] of resourcesOfType<RoleProps>(t, 'AWS::IAM::Role')) {
    const expected = EXPECTED_TRUST.find(([pattern]) => pattern.test(id))?.[1];
    if (expected === undefined) {
      problems.push(`${id}: a role nobody expects (add its principals to EXPECTED_TRUST)`);
      continue;
    }
    const statements = list(role.AssumeRolePolicyDocument.Statement);
    for (const s of statements) {
      if (s.Effect !== 'Allow' || list(s.Action).some((a) => a !== 'sts:AssumeRole')) problems.push(`${id}: trust statement ${JSON.stringify(s)} is not a plain sts:AssumeRole allow`);
    }
    const actual = statements.flatMap(principalsOf).sort();
    if (JSON.stringify(actual) !== JSON.stringify([...expected].sort())) problems.push(`${id}: trusts ${actual.join(', ')}; expected ${expected.join(', ')}`);
  }
  return problems;
}

/** Both crawlers skip Spark metadata and checkpoints and say what a schema change does. */
export function crawlerProblems(t: CfnTemplate): string[] {
  const problems: string[] = [];
  const crawlers = resourcesOfType<CrawlerProps>(t, 'AWS::Glue::Crawler');
  const layers = crawlers.map(([, c]) => String(c.TablePrefix)).sort();
  if (JSON.stringify(layers) !== JSON.stringify(['curated_', 'raw_'])) problems.push(`crawlers' table prefixes are ${layers.join(', ')}; expected curated_ and raw_`);
  for (const [id, c] of crawlers) {
    const layer = String(c.TablePrefix).replace(/_$/, '');
    for (const target of c.Targets?.S3Targets ?? []) {
      const exclusions = target.Exclusions ?? [];
      for (const needed of ['_spark_metadata/**', '**/_spark_metadata/**', '**/checkpoints/**']) {
        if (!exclusions.includes(needed)) problems.push(`${id}: target does not exclude ${needed}`);
      }
      if (!JSON.stringify(target.Path).endsWith(`/${layer}/"]]}`)) problems.push(`${id}: target ${JSON.stringify(target.Path)} is not s3://<bucket>/${layer}/`);
    }
    if ((c.Targets?.S3Targets ?? []).length !== 1) problems.push(`${id}: expected exactly one S3 target`);
    const policy = c.SchemaChangePolicy ?? {};
    if (policy.UpdateBehavior === undefined || policy.DeleteBehavior === undefined) problems.push(`${id}: no explicit schema-change policy`);
    if (policy.DeleteBehavior === 'DELETE_FROM_DATABASE') problems.push(`${id}: deletes tables when data goes away`);
  }
  return problems;
}

const COMMON_OUTPUTS = [
  'SMARTCITY_AWS_REGION',
  'SMARTCITY_S3_RAW_BUCKET',
  'SMARTCITY_S3_CURATED_BUCKET',
  'SMARTCITY_S3_QUARANTINE_BUCKET',
  'SMARTCITY_S3_CHECKPOINTS_BUCKET',
  'SMARTCITY_S3_ATHENA_RESULTS_BUCKET',
  'SMARTCITY_S3_ARTIFACTS_BUCKET',
  'SMARTCITY_GLUE_DATABASE',
  'SMARTCITY_GLUE_RAW_CRAWLER',
  'SMARTCITY_GLUE_CURATED_CRAWLER',
  'SMARTCITY_GLUE_CURATE_JOB',
  'SMARTCITY_EMR_CLUSTER_ID',
  'SMARTCITY_REDSHIFT_DATABASE',
  'SMARTCITY_REDSHIFT_COPY_ROLE_ARN',
  'SMARTCITY_ATHENA_WORKGROUP',
  'SMARTCITY_ATHENA_OUTPUT_LOCATION',
  'SMARTCITY_KAFKA_SECRET_ARN',
];

/**
 * The settings a stack outputs, per Redshift choice. Never: the endpoint (tests only), the
 * Redshift schema (the loader's default) and a Redshift secret (the worker uses IAM credentials).
 */
export const EXPECTED_OUTPUTS = {
  serverless: [...COMMON_OUTPUTS, 'SMARTCITY_REDSHIFT_WORKGROUP'],
  cluster: [...COMMON_OUTPUTS, 'SMARTCITY_REDSHIFT_CLUSTER_ID', 'SMARTCITY_REDSHIFT_DB_USER'],
};

/** Output keys are settings (config/aws-outputs.ts) and exactly the expected ones. */
export function outputProblems(t: CfnTemplate, expectedEnv: string[]): string[] {
  const problems: string[] = [];
  const keys = Object.keys(t.Outputs ?? {});
  for (const key of keys) {
    const mapped = AWS_OUTPUTS.find((o) => o.outputKey === key);
    if (!mapped) problems.push(`output ${key} is no setting of config/aws-outputs.ts`);
    else if (t.Outputs![key]!.Description !== mapped.env) problems.push(`output ${key} is described as ${t.Outputs![key]!.Description}, not ${mapped.env}`);
  }
  const expected = expectedEnv.map((env) => AWS_OUTPUTS.find((o) => o.env === env)?.outputKey ?? `?${env}`).sort();
  if (JSON.stringify([...keys].sort()) !== JSON.stringify(expected)) problems.push(`outputs ${[...keys].sort().join(', ')}; expected ${expected.join(', ')}`);
  return problems;
}

export function allProblems(t: CfnTemplate): string[] {
  return [...bucketProblems(t), ...iamProblems(t), ...trustProblems(t), ...crawlerProblems(t)];
}

// ---- the worker policy against the activities' SDK calls -----------------------------------------

export interface SdkCall {
  client: string;
  operation: string;
  file: string;
}

/** The AWS SDK operations a TypeScript source uses: imported `XxxCommand`s and `paginateXxx`s. */
export function sdkCallsIn(source: string, file: string): SdkCall[] {
  const calls: SdkCall[] = [];
  for (const m of source.matchAll(/import\s+(type\s+)?\{([^}]*)\}\s*from\s*['"]@aws-sdk\/client-([a-z0-9-]+)['"]/g)) {
    if (m[1]) continue;
    for (const raw of m[2]!.split(',')) {
      const name = raw.trim().split(/\s+as\s+/)[0]!;
      if (name === '' || name.startsWith('type ')) continue;
      const operation = /^([A-Z]\w*)Command$/.exec(name)?.[1] ?? /^paginate([A-Z]\w*)$/.exec(name)?.[1];
      if (operation !== undefined) calls.push({ client: m[3]!, operation, file });
    }
  }
  for (const m of source.matchAll(/import\s+\*\s+as\s+(\w+)\s+from\s*['"]@aws-sdk\/client-([a-z0-9-]+)['"]/g)) {
    for (const use of source.matchAll(new RegExp(`\\b${m[1]}\\.(?:([A-Z]\\w*)Command|paginate([A-Z]\\w*))\\b`, 'g'))) {
      calls.push({ client: m[2]!, operation: (use[1] ?? use[2])!, file });
    }
  }
  return calls;
}

export const ACTIVITIES_DIR = join(PROJECT_ROOT, 'activities', 'aws');

export function activitySdkCalls(dir = ACTIVITIES_DIR): SdkCall[] {
  return readdirSync(dir)
    .filter((f) => f.endsWith('.ts'))
    .sort()
    .flatMap((f) => sdkCallsIn(readFileSync(join(dir, f), 'utf8'), `activities/aws/${f}`));
}

/**
 * What the issue names as the worker's work, whatever the code says today: run the crawlers and the
 * curate job, the streaming step, Data API loads, Athena checks, landing checks and Glue logs.
 */
export const CORE_WORKER_ACTIONS = [
  'glue:StartCrawler',
  'glue:GetCrawler',
  'glue:StartJobRun',
  'glue:GetJobRun',
  'elasticmapreduce:AddJobFlowSteps',
  'elasticmapreduce:DescribeStep',
  'elasticmapreduce:CancelSteps',
  'redshift-data:ExecuteStatement',
  'redshift-data:BatchExecuteStatement',
  'redshift-data:DescribeStatement',
  'redshift-data:GetStatementResult',
  'redshift-data:CancelStatement',
  'athena:StartQueryExecution',
  'athena:GetQueryExecution',
  'athena:GetQueryResults',
  'athena:StopQueryExecution',
  's3:ListBucket',
  's3:GetObject',
  'logs:GetLogEvents',
];

/** The worker's managed policy statements (the one named <prefix>-worker). */
export function workerStatements(t: CfnTemplate): Statement[] {
  const policies = resourcesOfType<PolicyProps>(t, 'AWS::IAM::ManagedPolicy').filter(([, p]) => /-worker$/.test(String(p.ManagedPolicyName)));
  if (policies.length !== 1) throw new Error(`expected one worker managed policy, found ${policies.length}`);
  return list(policies[0]![1].PolicyDocument.Statement);
}

/** Actions the worker needs: the SDK calls' actions, the core list, what those calls imply. */
export function requiredWorkerActions(calls: SdkCall[], redshift: 'serverless' | 'cluster'): Map<string, string> {
  const needed = new Map<string, string>();
  for (const c of calls) for (const action of iamActionsFor(c.client, c.operation)) if (!needed.has(action)) needed.set(action, `${c.operation} in ${c.file}`);
  for (const action of CORE_WORKER_ACTIONS) if (!needed.has(action)) needed.set(action, 'the issue (core list)');
  for (const [action, why] of [...needed]) {
    for (const implied of IMPLIED_ACTIONS[action] ?? []) {
      const applies = implied.startsWith('redshift-serverless:') ? redshift === 'serverless' : implied.startsWith('redshift:') ? redshift === 'cluster' : true;
      if (applies && !needed.has(implied)) needed.set(implied, `implied by ${action} (${why})`);
    }
  }
  return needed;
}

/** Every needed action allowed on a named resource (or "*" where AWS requires it). */
export function workerCoverageProblems(statements: Statement[], needed: Map<string, string>): string[] {
  const problems: string[] = [];
  for (const [action, why] of needed) {
    const allowing = statements.filter((s) => s.Effect === 'Allow' && list(s.Action).some((p) => actionMatches(p, action)));
    if (allowing.length === 0) problems.push(`${action} (${why}) is not allowed by the worker policy`);
    else if (allowing.every((s) => list(s.Resource).includes('*')) && !WILDCARD_RESOURCE_ACTIONS.has(action)) problems.push(`${action} is allowed only on Resource "*"`);
  }
  return problems;
}

/** Every action the worker policy allows is needed: nothing granted "just in case". */
export function workerExcessProblems(statements: Statement[], calls: SdkCall[]): string[] {
  const mayNeed = new Set([...requiredWorkerActions(calls, 'serverless').keys(), ...requiredWorkerActions(calls, 'cluster').keys()]);
  return statements
    .filter((s) => s.Effect === 'Allow')
    .flatMap((s) => list(s.Action))
    .filter((action) => ![...mayNeed].some((needed) => actionMatches(action, needed)))
    .map((action) => `worker policy allows ${action}, which no activity calls`);
}
