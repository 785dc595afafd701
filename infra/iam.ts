// IAM knowledge the stack and its tests share: which SDK call needs which IAM action, and the
// few actions whose only resource AWS accepts is "*". Everything else in the stack names its
// resources; the tests hold the synthesized template to that.

/** @aws-sdk/client-<name> → IAM service prefix. */
export const IAM_PREFIX: Record<string, string> = {
  glue: 'glue',
  emr: 'elasticmapreduce',
  'redshift-data': 'redshift-data',
  'redshift-serverless': 'redshift-serverless',
  redshift: 'redshift',
  athena: 'athena',
  s3: 's3',
  'cloudwatch-logs': 'logs',
  'secrets-manager': 'secretsmanager',
  sts: 'sts',
};

/**
 * SDK operations whose IAM action is not `<prefix>:<operation>` (per the Service Authorization
 * Reference). An empty list: the call needs no permission.
 */
const ACTION_EXCEPTIONS: Record<string, string[]> = {
  's3:ListObjectsV2': ['s3:ListBucket'],
  's3:ListObjects': ['s3:ListBucket'],
  's3:HeadBucket': ['s3:ListBucket'],
  's3:HeadObject': ['s3:GetObject'],
  's3:GetObjectAttributes': ['s3:GetObject', 's3:GetObjectAttributes'],
  's3:ListObjectVersions': ['s3:ListBucketVersions'],
  's3:DeleteObjects': ['s3:DeleteObject'],
  's3:CopyObject': ['s3:GetObject', 's3:PutObject'],
  's3:CreateMultipartUpload': ['s3:PutObject'],
  's3:UploadPart': ['s3:PutObject'],
  's3:CompleteMultipartUpload': ['s3:PutObject'],
  's3:ListParts': ['s3:ListMultipartUploadParts'],
  'redshift-data:GetStatementResultV2': ['redshift-data:GetStatementResult'],
  'sts:GetCallerIdentity': [],
};

/** The IAM actions one SDK call needs, e.g. ('s3', 'ListObjectsV2') → ['s3:ListBucket']. */
export function iamActionsFor(clientPackage: string, operation: string): string[] {
  const prefix = IAM_PREFIX[clientPackage];
  if (prefix === undefined) throw new Error(`no IAM prefix known for @aws-sdk/client-${clientPackage}: add it to IAM_PREFIX in infra/iam.ts`);
  const action = `${prefix}:${operation}`;
  return ACTION_EXCEPTIONS[action] ?? [action];
}

/**
 * Actions AWS authorizes only on Resource "*" (no resource types in the Service Authorization
 * Reference). A statement in the stack may use "*" for these and nothing else.
 */
export const WILDCARD_RESOURCE_ACTIONS: ReadonlySet<string> = new Set([
  // Data API statements are not resources; the policy narrows them to the caller's own statements
  // with the redshift-data:statement-owner-iam-userid condition instead.
  'redshift-data:DescribeStatement',
  'redshift-data:GetStatementResult',
  'redshift-data:CancelStatement',
  'redshift-data:ListStatements',
]);

/**
 * Permissions a call needs beyond its own action, because the service acts with the caller's
 * credentials: Athena reads the Glue catalog and the scanned data and writes results as the
 * caller; the Data API gets database credentials for the caller (Serverless, or a provisioned
 * cluster's temporary IAM credentials).
 */
export const IMPLIED_ACTIONS: Record<string, string[]> = {
  'athena:StartQueryExecution': [
    'glue:GetDatabase',
    'glue:GetTable',
    'glue:GetTables',
    'glue:GetPartition',
    'glue:GetPartitions',
    'glue:BatchGetPartition',
    's3:GetBucketLocation',
    's3:ListBucket',
    's3:GetObject',
    's3:PutObject',
    's3:AbortMultipartUpload',
    's3:ListMultipartUploadParts',
  ],
  'athena:GetQueryResults': ['s3:GetObject'],
  'redshift-data:ExecuteStatement': ['redshift-serverless:GetCredentials', 'redshift:GetClusterCredentials'],
  'redshift-data:BatchExecuteStatement': ['redshift-serverless:GetCredentials', 'redshift:GetClusterCredentials'],
};
