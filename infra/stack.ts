// Everything the aws target runs on, in one stack: the lake buckets, the Glue catalog, crawlers
// and the curate job (which commits the curated Iceberg tables), what EMR needs for the streaming
// step, Redshift, Athena, the Kafka secret and the worker's own permissions. Secure by
// construction: no bucket can be public or read without TLS, every role names the resources it may
// touch, no credential appears anywhere (Redshift manages its admin password in Secrets Manager;
// the Kafka secret's value is set out of band).
// Its outputs are the aws target's settings, one per SMARTCITY_* variable (config/aws-outputs.ts).
import { join } from 'node:path';
import { Aws, CfnOutput, Duration, RemovalPolicy, Stack, Stage, Tags, type StackProps } from 'aws-cdk-lib';
import * as athena from 'aws-cdk-lib/aws-athena';
import * as emr from 'aws-cdk-lib/aws-emr';
import * as glue from 'aws-cdk-lib/aws-glue';
import * as iam from 'aws-cdk-lib/aws-iam';
import * as redshiftServerless from 'aws-cdk-lib/aws-redshiftserverless';
import * as s3 from 'aws-cdk-lib/aws-s3';
import * as s3deploy from 'aws-cdk-lib/aws-s3-deployment';
import * as secretsmanager from 'aws-cdk-lib/aws-secretsmanager';
import type { Construct } from 'constructs';
import { EMR_RELEASE } from '../activities/aws/emr';
import { outputKey } from '../config/aws-outputs';
import { SPARK_ARTIFACTS, buildSparkBundle } from './spark-bundle';

/**
 * Glue 5.1: Spark 3.5.6, Python 3.11 and Iceberg 1.10.0, the Iceberg line spark/iceberg-pom.xml pins
 * for the local target (docs.aws.amazon.com/glue/latest/dg/aws-glue-programming-etl-format-iceberg.html).
 */
export const GLUE_VERSION = '5.1';

/**
 * What a Glue job cannot set from its script: Iceberg's jars (--datalake-formats) and Spark's SQL
 * extensions (a static setting, read when the session starts; MERGE INTO needs them). curate.py
 * configures its Iceberg catalog `lake` itself.
 */
export const ICEBERG_JOB_ARGUMENTS = {
  '--datalake-formats': 'iceberg',
  '--conf': 'spark.sql.extensions=org.apache.iceberg.spark.extensions.IcebergSparkSessionExtensions',
} as const;

/**
 * What crawlers skip: Spark's streaming sink log and checkpoints (metadata, not data: crawled, they
 * become bogus tables or columns) and half-written output. Patterns are relative to the target path.
 */
const CRAWLER_EXCLUSIONS = ['_spark_metadata/**', '**/_spark_metadata/**', 'checkpoints/**', '**/checkpoints/**', '**/_temporary/**', '**/_SUCCESS'];

export interface SmartcityStackProps extends StackProps {
  /** Where the streaming step runs: a new cluster in this subnet, or an existing cluster. */
  emr: { subnetId: string } | { clusterId: string };
  /**
   * The warehouse: a new Redshift Serverless namespace + workgroup (subnets: at least three AZs;
   * default: the default VPC's), or an existing provisioned cluster reached with temporary
   * credentials for dbUser (attach the COPY role to it yourself).
   */
  redshift: { serverless: { subnetIds?: string[] } } | { clusterId: string; dbUser: string; database: string };
  /** Delete the buckets and their objects with the stack (development); default: keep the data. */
  destroyData?: boolean;
  /** Athena stops a query of the workgroup that scans more; default 10 GiB. */
  athenaBytesScannedCutoff?: number;
}

export class SmartcityStack extends Stack {
  constructor(scope: Construct, id: string, props: SmartcityStackProps) {
    super(scope, id, props);
    const prefix = id.toLowerCase().replace(/[^a-z0-9]+/g, '-');
    const databaseName = prefix.replace(/-/g, '_');
    const region = Aws.REGION;
    const account = Aws.ACCOUNT_ID;
    const partition = Aws.PARTITION;
    const arn = (service: string, resource: string) => `arn:${partition}:${service}:${region}:${account}:${resource}`;
    const output = (env: string, value: string) => new CfnOutput(this, outputKey(env), { value, description: env });
    Tags.of(this).add('smartcity:stack', id);

    // ---- lake buckets ---------------------------------------------------------------------
    const bucket = (name: string, lifecycleRules: s3.LifecycleRule[] = []) =>
      new s3.Bucket(this, name, {
        blockPublicAccess: s3.BlockPublicAccess.BLOCK_ALL,
        objectOwnership: s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
        encryption: s3.BucketEncryption.S3_MANAGED,
        enforceSSL: true,
        minimumTLSVersion: 1.2,
        removalPolicy: props.destroyData ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN,
        autoDeleteObjects: props.destroyData ?? false,
        lifecycleRules: [{ id: 'abort-incomplete-uploads', abortIncompleteMultipartUploadAfter: Duration.days(1) }, ...lifecycleRules],
      });
    const raw = bucket('RawBucket');
    const curated = bucket('CuratedBucket');
    // Rejected records are kept long enough to investigate and replay, then go.
    const quarantine = bucket('QuarantineBucket', [{ id: 'expire-quarantine', expiration: Duration.days(90) }]);
    // No expiry here: Spark deletes obsolete checkpoint files itself; expiring live ones would
    // break the exactly-once restart.
    const checkpoints = bucket('CheckpointsBucket');
    const athenaResults = bucket('AthenaResultsBucket', [{ id: 'expire-results', expiration: Duration.days(7) }]);
    const artifacts = bucket('ArtifactsBucket', [
      { id: 'expire-emr-logs', prefix: 'emr-logs/', expiration: Duration.days(30) },
      { id: 'expire-glue-temp', prefix: 'glue-temp/', expiration: Duration.days(7) },
    ]);
    const s3Url = (b: s3.IBucket, key: string) => `s3://${b.bucketName}/${key}`;

    // The PySpark code, from this checkout, at fixed keys under spark/ in the artifacts bucket.
    const sparkArtifacts = new s3deploy.BucketDeployment(this, 'SparkArtifacts', {
      sources: [s3deploy.Source.asset(buildSparkBundle(join(Stage.of(this)?.outdir ?? '.', `${id}-spark-bundle`)))],
      destinationBucket: artifacts,
      destinationKeyPrefix: SPARK_ARTIFACTS.prefix,
      prune: true,
    });

    // ---- Glue: catalog, crawlers, curate job -------------------------------------------------
    const database = new glue.CfnDatabase(this, 'GlueDatabase', {
      catalogId: account,
      databaseInput: { name: databaseName, description: 'smartcity lake: raw_<source> tables (crawled) and <source> tables (curated, Iceberg)' },
    });
    const catalogArns = [arn('glue', 'catalog'), arn('glue', `database/${databaseName}`), arn('glue', `table/${databaseName}/*`)];
    const readCatalog = (sid: string) => new iam.PolicyStatement({ sid, actions: ['glue:GetDatabase', 'glue:GetTable', 'glue:GetTables'], resources: catalogArns });
    const glueLogs = (group: string) => [arn('logs', `log-group:${group}`), arn('logs', `log-group:${group}:log-stream:*`)];

    const crawlerRole = new iam.Role(this, 'CrawlerRole', {
      assumedBy: new iam.ServicePrincipal('glue.amazonaws.com'),
      description: 'Glue crawlers of the raw and curated layers',
    });
    crawlerRole.addToPolicy(
      new iam.PolicyStatement({
        sid: 'CatalogTablesAndPartitions',
        actions: [
          'glue:GetDatabase',
          'glue:GetTable',
          'glue:GetTables',
          'glue:CreateTable',
          'glue:UpdateTable',
          'glue:GetPartition',
          'glue:GetPartitions',
          'glue:BatchGetPartition',
          'glue:CreatePartition',
          'glue:BatchCreatePartition',
          'glue:UpdatePartition',
          'glue:BatchUpdatePartition',
        ],
        resources: catalogArns,
      }),
    );
    crawlerRole.addToPolicy(
      new iam.PolicyStatement({ sid: 'CrawlerLogs', actions: ['logs:CreateLogGroup', 'logs:CreateLogStream', 'logs:PutLogEvents'], resources: glueLogs('/aws-glue/crawlers') }),
    );
    raw.grantRead(crawlerRole, 'raw/*');
    curated.grantRead(crawlerRole, 'curated/*');

    const crawler = (name: string, layer: 'raw' | 'curated', b: s3.IBucket) => {
      const c = new glue.CfnCrawler(this, name, {
        name: `${prefix}-${layer}`,
        description: `${layer} layer to ${layer}_<source> tables, one per source, partitioned by date/hour`,
        role: crawlerRole.roleArn,
        databaseName,
        tablePrefix: `${layer}_`,
        targets: { s3Targets: [{ path: s3Url(b, `${layer}/`), exclusions: CRAWLER_EXCLUSIONS }] },
        // New columns and partitions update the tables; a source that stops writing keeps its table
        // (logged, not dropped), so queries over older windows keep working.
        schemaChangePolicy: { updateBehavior: 'UPDATE_IN_DATABASE', deleteBehavior: 'LOG' },
        recrawlPolicy: { recrawlBehavior: 'CRAWL_EVERYTHING' },
        configuration: JSON.stringify({
          Version: 1.0,
          // s3://bucket/<layer>/<source>/…: the third level is the table, whatever the columns.
          Grouping: { TableGroupingPolicy: 'CombineCompatibleSchemas', TableLevelConfiguration: 3 },
          CrawlerOutput: { Partitions: { AddOrUpdateBehavior: 'InheritFromTable' }, Tables: { AddOrUpdateBehavior: 'MergeNewColumns' } },
        }),
      });
      c.node.addDependency(database);
      return c;
    };
    const rawCrawler = crawler('RawCrawler', 'raw', raw);
    // Nothing runs it any more: each curate's Iceberg commit registers its table. It stays because
    // the aws settings still name it (SMARTCITY_GLUE_CURATED_CRAWLER, config/index.ts); the worker
    // may not start it.
    const curatedCrawler = crawler('CuratedCrawler', 'curated', curated);

    const curateRole = new iam.Role(this, 'CurateJobRole', {
      assumedBy: new iam.ServicePrincipal('glue.amazonaws.com'),
      description: 'Glue curate job: reads raw, commits the curated Iceberg tables, writes its run summaries',
    });
    raw.grantRead(curateRole, 'raw/*');
    // The Iceberg tables at s3://<curated>/<source>/: data and metadata files written, read, and
    // deleted when a commit fails or old snapshots expire.
    curated.grantReadWrite(curateRole);
    // Iceberg's Glue catalog: the namespace must exist; a table is created on the first commit and
    // each commit swaps its metadata location (UpdateTable with the version it read).
    curateRole.addToPolicy(
      new iam.PolicyStatement({ sid: 'IcebergCatalog', actions: ['glue:GetDatabase', 'glue:GetTable', 'glue:CreateTable', 'glue:UpdateTable'], resources: catalogArns }),
    );
    artifacts.grantRead(curateRole, `${SPARK_ARTIFACTS.prefix}*`);
    artifacts.grantReadWrite(curateRole, '_runs/curate/*');
    artifacts.grantReadWrite(curateRole, 'glue-temp/*');
    curateRole.addToPolicy(
      new iam.PolicyStatement({
        sid: 'JobLogs',
        actions: ['logs:CreateLogGroup', 'logs:CreateLogStream', 'logs:PutLogEvents'],
        resources: [...glueLogs('/aws-glue/jobs/output'), ...glueLogs('/aws-glue/jobs/error'), ...glueLogs('/aws-glue/jobs/logs-v2')],
      }),
    );
    const curateJob = new glue.CfnJob(this, 'CurateJob', {
      name: `${prefix}-curate`,
      description: 'raw to curated for one window (spark/jobs/curate.py)',
      role: curateRole.roleArn,
      glueVersion: GLUE_VERSION,
      command: { name: 'glueetl', pythonVersion: '3', scriptLocation: s3Url(artifacts, SPARK_ARTIFACTS.curateScript) },
      workerType: 'G.1X',
      numberOfWorkers: 2,
      timeout: 60,
      // Temporal retries the activity; a second Glue-level attempt would only hide the failure.
      maxRetries: 0,
      // Windows are curated one at a time (a second start gets ConcurrentRunsExceededException,
      // which the activity retries), so two runs never rewrite the same curated partitions.
      executionProperty: { maxConcurrentRuns: 1 },
      defaultArguments: {
        ...ICEBERG_JOB_ARGUMENTS,
        '--job-language': 'python',
        '--extra-py-files': s3Url(artifacts, SPARK_ARTIFACTS.pyFiles),
        '--schemas_dir': s3Url(artifacts, SPARK_ARTIFACTS.schemasDir),
        '--TempDir': s3Url(artifacts, 'glue-temp/'),
        '--enable-continuous-cloudwatch-log': 'true',
      },
    });
    curateJob.node.addDependency(sparkArtifacts);

    // ---- EMR: roles for the streaming step, optionally the cluster ----------------------------
    const kafkaSecret = new secretsmanager.Secret(this, 'KafkaSecret', {
      secretName: `${prefix}/kafka`,
      description: 'Kafka SASL credentials {"username": "...", "password": "..."} for the streaming job. Replace the placeholder: aws secretsmanager put-secret-value',
      generateSecretString: { secretStringTemplate: JSON.stringify({ username: 'replace-me' }), generateStringKey: 'password', excludePunctuation: true },
    });

    const emrInstanceRole = new iam.Role(this, 'EmrInstanceRole', {
      assumedBy: new iam.ServicePrincipal('ec2.amazonaws.com'),
      description: 'EMR cluster nodes: the streaming step reads Kafka credentials, writes raw, quarantine and checkpoints',
    });
    raw.grantReadWrite(emrInstanceRole);
    quarantine.grantReadWrite(emrInstanceRole);
    checkpoints.grantReadWrite(emrInstanceRole);
    checkpoints.grantDelete(emrInstanceRole);
    artifacts.grantRead(emrInstanceRole, `${SPARK_ARTIFACTS.prefix}*`);
    artifacts.grantWrite(emrInstanceRole, 'emr-logs/*');
    kafkaSecret.grantRead(emrInstanceRole);
    const emrInstanceProfile = new iam.CfnInstanceProfile(this, 'EmrInstanceProfile', { roles: [emrInstanceRole.roleName] });

    const emrServiceRole = new iam.Role(this, 'EmrServiceRole', {
      assumedBy: new iam.ServicePrincipal('elasticmapreduce.amazonaws.com', { conditions: { StringEquals: { 'aws:SourceAccount': account } } }),
      description: 'EMR service role (AmazonEMRServicePolicy_v2: acts only on resources tagged for-use-with-amazon-emr-managed-policies=true)',
      managedPolicies: [iam.ManagedPolicy.fromAwsManagedPolicyName('service-role/AmazonEMRServicePolicy_v2')],
    });
    // The managed policy may pass only EMR_EC2_DefaultRole; this is our nodes' role instead.
    emrServiceRole.addToPolicy(
      new iam.PolicyStatement({
        sid: 'PassInstanceRole',
        actions: ['iam:PassRole'],
        resources: [emrInstanceRole.roleArn],
        conditions: { StringEquals: { 'iam:PassedToService': 'ec2.amazonaws.com' } },
      }),
    );

    let emrClusterId: string;
    if ('subnetId' in props.emr) {
      const instanceGroup = (name: string, instanceCount: number) => ({ name, instanceCount, instanceType: 'm5.xlarge', market: 'ON_DEMAND' });
      const cluster = new emr.CfnCluster(this, 'EmrCluster', {
        name: `${prefix}-streaming`,
        releaseLabel: EMR_RELEASE,
        applications: [{ name: 'Spark' }],
        serviceRole: emrServiceRole.roleArn,
        jobFlowRole: emrInstanceProfile.ref,
        logUri: s3Url(artifacts, 'emr-logs/'),
        // The ingest job lands each micro-batch with pyarrow (mapInArrow) on every node.
        bootstrapActions: [{ name: 'smartcity-python-packages', scriptBootstrapAction: { path: s3Url(artifacts, SPARK_ARTIFACTS.emrBootstrap) } }],
        // The streaming step runs for good; a second slot lets a restarted step start while the
        // old one is still being cancelled.
        stepConcurrencyLevel: 2,
        instances: {
          ec2SubnetId: props.emr.subnetId,
          keepJobFlowAliveWhenNoSteps: true,
          terminationProtected: false,
          masterInstanceGroup: instanceGroup('primary', 1),
          coreInstanceGroup: instanceGroup('core', 2),
        },
        configurations: [
          {
            classification: 'spark-defaults',
            configurationProperties: {
              'spark.sql.session.timeZone': 'UTC',
              'spark.sql.shuffle.partitions': '8',
              // The supervisor workflow restarts a failed job from its checkpoint; a YARN retry
              // would race it with a second driver on the same checkpoint.
              'spark.yarn.maxAppAttempts': '1',
            },
          },
        ],
        tags: [{ key: 'for-use-with-amazon-emr-managed-policies', value: 'true' }],
      });
      cluster.node.addDependency(sparkArtifacts);
      emrClusterId = cluster.ref;
    } else {
      emrClusterId = props.emr.clusterId;
    }
    output('SMARTCITY_EMR_CLUSTER_ID', emrClusterId);

    // ---- Redshift ----------------------------------------------------------------------------
    const copyRole = new iam.Role(this, 'RedshiftCopyRole', {
      assumedBy: new iam.CompositePrincipal(new iam.ServicePrincipal('redshift.amazonaws.com'), new iam.ServicePrincipal('redshift-serverless.amazonaws.com')),
      description: 'Role of the external schema Redshift reads the curated Iceberg tables through: the Glue database and the curated bucket, read only',
    });
    curated.grantRead(copyRole);
    copyRole.addToPolicy(readCatalog('CuratedCatalogRead'));

    // ---- Athena --------------------------------------------------------------------------------
    const athenaOutputLocation = s3Url(athenaResults, 'results/');
    const athenaWorkgroup = new athena.CfnWorkGroup(this, 'AthenaWorkgroup', {
      name: prefix,
      description: 'smartcity quality checks and ad-hoc queries',
      recursiveDeleteOption: true,
      workGroupConfiguration: {
        // Clients cannot pick another result location or skip encryption.
        enforceWorkGroupConfiguration: true,
        bytesScannedCutoffPerQuery: props.athenaBytesScannedCutoff ?? 10 * 1024 ** 3,
        publishCloudWatchMetricsEnabled: true,
        engineVersion: { selectedEngineVersion: 'Athena engine version 3' },
        resultConfiguration: {
          outputLocation: athenaOutputLocation,
          encryptionConfiguration: { encryptionOption: 'SSE_S3' },
          expectedBucketOwner: account,
        },
      },
    });

    // ---- the Temporal worker ------------------------------------------------------------------
    const workerPolicy = new iam.ManagedPolicy(this, 'WorkerPolicy', {
      managedPolicyName: `${prefix}-worker`,
      description: 'The smartcity worker: exactly the calls its aws activities make, on the resources of this stack',
    });
    const allow = (sid: string, actions: string[], resources: string[], conditions?: Record<string, unknown>) =>
      workerPolicy.addStatements(new iam.PolicyStatement({ sid, actions, resources, ...(conditions && { conditions }) }));

    allow('GlueCrawlers', ['glue:StartCrawler', 'glue:GetCrawler', 'glue:StopCrawler'], [arn('glue', `crawler/${rawCrawler.ref}`)]);
    allow('GlueCurateJob', ['glue:StartJobRun', 'glue:GetJobRun', 'glue:GetJobRuns', 'glue:BatchStopJobRun'], [arn('glue', `job/${curateJob.ref}`)]);
    allow('GlueCatalogRead', ['glue:GetDatabase', 'glue:GetTable', 'glue:GetTables', 'glue:GetPartition', 'glue:GetPartitions', 'glue:BatchGetPartition'], catalogArns);
    allow(
      'EmrStreamingStep',
      ['elasticmapreduce:AddJobFlowSteps', 'elasticmapreduce:DescribeStep', 'elasticmapreduce:ListSteps', 'elasticmapreduce:CancelSteps'],
      [arn('elasticmapreduce', `cluster/${emrClusterId}`)],
    );
    allow('AthenaQueries', ['athena:StartQueryExecution', 'athena:GetQueryExecution', 'athena:GetQueryResults', 'athena:StopQueryExecution'], [arn('athena', `workgroup/${athenaWorkgroup.ref}`)]);
    // Landing checks and Athena scans (raw, curated), run summaries (artifacts), query results
    // (Athena reads and writes them with the caller's credentials), and the streaming job's
    // progress lines (activities/aws/s3.ts progressLocation). Quarantine and the checkpoints
    // themselves are the streaming job's alone.
    const workerReads = [raw, curated, artifacts, athenaResults];
    allow('LakeList', ['s3:ListBucket', 's3:GetBucketLocation'], workerReads.map((b) => b.bucketArn));
    allow('LakeRead', ['s3:GetObject'], [...workerReads.map((b) => b.arnForObjects('*')), checkpoints.arnForObjects('_progress/*')]);
    // Without it, S3 answers a progress object not written yet with AccessDenied, not NoSuchKey.
    allow('ProgressList', ['s3:ListBucket'], [checkpoints.bucketArn], { StringLike: { 's3:prefix': '_progress/*' } });
    allow('AthenaResultsWrite', ['s3:PutObject', 's3:AbortMultipartUpload', 's3:ListMultipartUploadParts'], [athenaResults.arnForObjects('results/*')]);
    allow('GlueRunLogs', ['logs:GetLogEvents'], [arn('logs', 'log-group:/aws-glue/*'), arn('logs', 'log-group:/aws-glue/*:log-stream:*')]);
    allow(
      'RedshiftOwnStatements',
      ['redshift-data:DescribeStatement', 'redshift-data:GetStatementResult', 'redshift-data:CancelStatement'],
      // Statements have no ARN (see WILDCARD_RESOURCE_ACTIONS): only the worker's own are visible.
      ['*'],
      { StringEquals: { 'redshift-data:statement-owner-iam-userid': '${aws:userid}' } },
    );

    if ('serverless' in props.redshift) {
      const namespace = new redshiftServerless.CfnNamespace(this, 'RedshiftNamespace', {
        namespaceName: prefix,
        dbName: 'smartcity',
        adminUsername: 'smartcity_admin',
        // Redshift generates the admin password and keeps it in Secrets Manager.
        manageAdminPassword: true,
        iamRoles: [copyRole.roleArn],
        defaultIamRoleArn: copyRole.roleArn,
      });
      // The warehouse's data lives in the namespace: kept like the buckets unless destroyData.
      namespace.applyRemovalPolicy(props.destroyData ? RemovalPolicy.DESTROY : RemovalPolicy.RETAIN);
      const workgroup = new redshiftServerless.CfnWorkgroup(this, 'RedshiftWorkgroup', {
        workgroupName: prefix,
        namespaceName: prefix,
        baseCapacity: 8,
        publiclyAccessible: false,
        ...(props.redshift.serverless.subnetIds && { subnetIds: props.redshift.serverless.subnetIds }),
      });
      workgroup.node.addDependency(namespace);
      const workgroupArn = workgroup.attrWorkgroupWorkgroupArn;
      allow('RedshiftDataApi', ['redshift-data:ExecuteStatement', 'redshift-data:BatchExecuteStatement'], [workgroupArn]);
      allow('RedshiftServerlessCredentials', ['redshift-serverless:GetCredentials'], [workgroupArn]);
      output('SMARTCITY_REDSHIFT_WORKGROUP', workgroup.ref);
      output('SMARTCITY_REDSHIFT_DATABASE', 'smartcity');
    } else {
      const { clusterId, dbUser, database: db } = props.redshift;
      allow('RedshiftDataApi', ['redshift-data:ExecuteStatement', 'redshift-data:BatchExecuteStatement'], [arn('redshift', `cluster:${clusterId}`)]);
      allow('RedshiftClusterCredentials', ['redshift:GetClusterCredentials'], [arn('redshift', `dbuser:${clusterId}/${dbUser}`), arn('redshift', `dbname:${clusterId}/${db}`)]);
      output('SMARTCITY_REDSHIFT_CLUSTER_ID', clusterId);
      output('SMARTCITY_REDSHIFT_DB_USER', dbUser);
      output('SMARTCITY_REDSHIFT_DATABASE', db);
    }

    // Assumable by this account's principals that IAM allows to (people, CI, an ECS task role);
    // the managed policy can equally be attached to the identity the worker already runs as.
    new iam.Role(this, 'WorkerRole', {
      roleName: `${prefix}-worker`,
      assumedBy: new iam.AccountRootPrincipal(),
      description: 'Runs the smartcity Temporal worker (target aws)',
      managedPolicies: [workerPolicy],
      maxSessionDuration: Duration.hours(12),
    });

    // ---- outputs: the aws target's settings ----------------------------------------------------
    const settings: Record<string, string> = {
      SMARTCITY_AWS_REGION: region,
      SMARTCITY_S3_RAW_BUCKET: raw.bucketName,
      SMARTCITY_S3_CURATED_BUCKET: curated.bucketName,
      SMARTCITY_S3_QUARANTINE_BUCKET: quarantine.bucketName,
      SMARTCITY_S3_CHECKPOINTS_BUCKET: checkpoints.bucketName,
      SMARTCITY_S3_ATHENA_RESULTS_BUCKET: athenaResults.bucketName,
      SMARTCITY_S3_ARTIFACTS_BUCKET: artifacts.bucketName,
      SMARTCITY_GLUE_DATABASE: databaseName,
      SMARTCITY_GLUE_RAW_CRAWLER: rawCrawler.ref,
      SMARTCITY_GLUE_CURATED_CRAWLER: curatedCrawler.ref,
      SMARTCITY_GLUE_CURATE_JOB: curateJob.ref,
      SMARTCITY_REDSHIFT_COPY_ROLE_ARN: copyRole.roleArn,
      SMARTCITY_ATHENA_WORKGROUP: athenaWorkgroup.ref,
      SMARTCITY_ATHENA_OUTPUT_LOCATION: athenaOutputLocation,
      SMARTCITY_KAFKA_SECRET_ARN: kafkaSecret.secretArn,
    };
    for (const [env, value] of Object.entries(settings)) output(env, value);
  }
}
