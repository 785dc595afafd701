// The moto tier: AWS APIs on loopback for wire-level tests of the aws activities (real SDK clients
// over HTTP). Uses the server scripts/test.sh started (SMARTCITY_TEST_MOTO_ENDPOINT) or, when a
// developer runs one file, starts its own moto_server on a free port and stops it afterwards.
//
// Isolation: test files may share one server concurrently, so a test never resets it globally
// (POST /moto-api/reset would wipe another file's state). Each test instead works in a fresh moto
// account (the x-moto-account-id header) with bucket names of its own — as clean as a reset.
// A server this helper started itself is reset when the file is done.
//
// What moto 5.2.5 cannot do, and how the tests cope (details in the README's test section):
// - Glue crawls only finish when ListCrawls is called, unless glue::crawl is set to "immediate".
// - Glue BatchStopJobRun, EMR CancelSteps and Redshift BatchExecuteStatement are not implemented (HTTP 500).
// - EMR steps and Redshift statements never leave RUNNING / STARTED; statements return fixed rows.
// - Athena returns canned results (a queue per account: the n-th query started gets the n-th result).
// - Redshift Data timestamps come back as ISO strings where the protocol has epoch seconds, which
//   the JS SDK refuses; motoClients() rewrites them before deserialising (test-only shim).
import { spawn, type ChildProcess } from 'node:child_process';
import { randomInt, randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { CreateBucketCommand, PutObjectCommand, type BucketLocationConstraint } from '@aws-sdk/client-s3';
import { CreateCrawlerCommand, CreateDatabaseCommand, CreateJobCommand, CreateTableCommand } from '@aws-sdk/client-glue';
import { RunJobFlowCommand } from '@aws-sdk/client-emr';
import { loadConfig, PROJECT_ROOT, type Config } from '../../config';
import { createAwsClients, type AwsClients } from '../../activities/aws/clients';
import type { CatalogColumn } from '../../activities/aws/glue';
import { AWS_TEST_ENV } from './aws-mock';
import { freePort } from './free-port';
import { NotYet, until } from './until';

// moto accepts any credentials; these keep a developer's real ones out of every signed request.
process.env.AWS_ACCESS_KEY_ID = 'testing';
process.env.AWS_SECRET_ACCESS_KEY = 'testing';
delete process.env.AWS_SESSION_TOKEN;
delete process.env.AWS_PROFILE;

export const MOTO_REGION = 'eu-west-2';

async function answers(endpoint: string): Promise<boolean> {
  try {
    // Not /moto-api/data.json: it serialises every model and fails once an EMR cluster exists.
    return (await fetch(`${endpoint}/moto-api/`)).ok;
  } catch {
    return false;
  }
}

export interface MotoServer {
  endpoint: string;
  /** Stops the server if this helper started it; a shared one is left running. */
  stop(): Promise<void>;
}

/** The shared server of the test run, or a private one on a free loopback port. */
export async function startMoto(): Promise<MotoServer> {
  const shared = process.env.SMARTCITY_TEST_MOTO_ENDPOINT;
  if (shared) {
    if (!(await answers(shared))) throw new Error(`SMARTCITY_TEST_MOTO_ENDPOINT=${shared} does not answer; is the moto server of scripts/test.sh running?`);
    return { endpoint: shared, stop: async () => {} };
  }
  const port = await freePort();
  const endpoint = `http://127.0.0.1:${port}`;
  const child: ChildProcess = spawn(join(PROJECT_ROOT, '.tools', 'venv', 'bin', 'moto_server'), ['-H', '127.0.0.1', '-p', String(port)], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, AWS_ACCESS_KEY_ID: 'testing', AWS_SECRET_ACCESS_KEY: 'testing' },
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  await until(
    `moto_server to answer on ${endpoint}`,
    async () => {
      if (await answers(endpoint)) return true;
      if (child.exitCode !== null) throw new Error(`moto_server exited with ${child.exitCode}: ${stderr} (run scripts/setup.sh?)`);
      throw new NotYet(`stderr: ${stderr}`);
    },
    { timeoutMs: 30_000, everyMs: 100 },
  ).catch((err: unknown) => {
    if (child.exitCode === null) child.kill('SIGTERM');
    throw err;
  });
  return {
    endpoint,
    stop: async () => {
      await fetch(`${endpoint}/moto-api/reset`, { method: 'POST' }).catch(() => undefined);
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** One test's world: its own moto account and bucket names. */
export interface MotoWorld {
  endpoint: string;
  account: string;
  config: Config;
  clients: AwsClients;
}

/**
 * An aws-target Config against moto, through loadConfig like the real thing: AWS_TEST_ENV with
 * the endpoint, bucket names unique to `suffix` and any `extra` settings.
 */
export function configFor(endpoint: string, suffix: string, extra: Record<string, string> = {}): Config {
  const buckets = Object.fromEntries(
    Object.entries(AWS_TEST_ENV)
      .filter(([name]) => name.startsWith('SMARTCITY_S3_'))
      .map(([name, bucket]) => [name, `${bucket}-${suffix}`]),
  );
  return loadConfig({ ...AWS_TEST_ENV, ...buckets, SMARTCITY_AWS_ENDPOINT: endpoint, SMARTCITY_AWS_REGION: MOTO_REGION, ...extra });
}

/** SDK clients for the config, speaking to the given moto account. */
export function motoClients(config: Config, account: string): AwsClients {
  const clients = createAwsClients(config.aws!);
  const accountHeader =
    <A extends { request: unknown }, O>(next: (args: A) => Promise<O>) =>
    (args: A): Promise<O> => {
      (args.request as { headers: Record<string, string> }).headers['x-moto-account-id'] = account;
      return next(args);
    };
  const step = { step: 'build', name: 'motoAccount' } as const;
  clients.glue.middlewareStack.add(accountHeader, step);
  clients.emr.middlewareStack.add(accountHeader, step);
  clients.redshiftData.middlewareStack.add(accountHeader, step);
  clients.athena.middlewareStack.add(accountHeader, step);
  clients.s3.middlewareStack.add(accountHeader, step);
  clients.logs.middlewareStack.add(accountHeader, step);
  // Runs between the HTTP handler and the deserialiser: sees the raw body first.
  clients.redshiftData.middlewareStack.add(
    (next) => async (args) => {
      const out = await next(args);
      const response = out.response as { body: AsyncIterable<Uint8Array> | Readable };
      const chunks: Buffer[] = [];
      for await (const chunk of response.body) chunks.push(Buffer.from(chunk as Uint8Array));
      const text = Buffer.concat(chunks)
        .toString('utf8')
        .replace(/"(CreatedAt|UpdatedAt)": "([^"]+)"/g, (_m, key: string, iso: string) => `"${key}": ${Date.parse(/Z$/.test(iso) ? iso : `${iso}Z`) / 1000}`);
      response.body = Readable.from([Buffer.from(text)]);
      return out;
    },
    { step: 'deserialize', priority: 'low', name: 'motoIsoTimestamps' },
  );
  return clients;
}

/** A fresh account and buckets for one test; `extra` settings on top (e.g. the EMR cluster id). */
export function motoWorld(endpoint: string, extra: Record<string, string> = {}): MotoWorld {
  const account = String(randomInt(100_000_000_000, 999_999_999_999));
  const config = configFor(endpoint, randomUUID().slice(0, 8), extra);
  return { endpoint, account, config, clients: motoClients(config, account) };
}

async function motoApi(endpoint: string, path: string, body: unknown): Promise<void> {
  const res = await fetch(`${endpoint}/moto-api/${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  if (!res.ok) throw new Error(`moto-api/${path} answered ${res.status}: ${await res.text()}`);
}

/**
 * How moto advances a model's state (a process-wide setting of the server), e.g.
 * ('athena::execution', { progression: 'manual', times: 1000 }) keeps queries running.
 */
export function setTransition(endpoint: string, model: string, transition: { progression: 'immediate' } | { progression: 'manual'; times: number }): Promise<void> {
  return motoApi(endpoint, 'state-manager/set-transition', { model_name: model, transition });
}

export function unsetTransition(endpoint: string, model: string): Promise<void> {
  return motoApi(endpoint, 'state-manager/unset-transition', { model_name: model });
}

/** Queues Athena results: the n-th query started in the account afterwards gets the n-th (header row first, as Athena). */
export function athenaResults(world: MotoWorld, results: { columns: string[]; rows: (string | number | null)[][] }[]): Promise<void> {
  return motoApi(world.endpoint, 'static/athena/query-results', {
    account_id: world.account,
    region: MOTO_REGION,
    results: results.map((r) => ({
      rows: [r.columns, ...r.rows].map((row) => ({ Data: row.map((v) => (v === null ? {} : { VarCharValue: String(v) })) })),
      column_info: r.columns.map((name) => ({ Name: name, Type: 'varchar', CatalogName: 'hive', SchemaName: '', TableName: '', Label: name, Nullable: 'UNKNOWN', CaseSensitive: true, Precision: 0, Scale: 0 })),
    })),
  });
}

// ---- fixtures ------------------------------------------------------------------------------------

export async function createBuckets(world: MotoWorld): Promise<void> {
  for (const bucket of Object.values(world.config.aws!.buckets)) {
    await world.clients.s3.send(new CreateBucketCommand({ Bucket: bucket, CreateBucketConfiguration: { LocationConstraint: MOTO_REGION as BucketLocationConstraint } }));
  }
}

export async function putObject(world: MotoWorld, bucket: string, key: string, body: string | Uint8Array): Promise<void> {
  await world.clients.s3.send(new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }));
}

export async function createDatabase(world: MotoWorld): Promise<void> {
  await world.clients.glue.send(new CreateDatabaseCommand({ DatabaseInput: { Name: world.config.aws!.glue.database } }));
}

/** A lake table as the crawler would make it: file columns, then the date/hour partition keys. */
export async function createLakeTable(world: MotoWorld, name: string, columns: CatalogColumn[], partitionKeys: CatalogColumn[] = [{ name: 'date', type: 'string' }, { name: 'hour', type: 'string' }]): Promise<void> {
  const aws = world.config.aws!;
  const layer = name.startsWith('raw_') ? 'raw' : 'curated';
  await world.clients.glue.send(
    new CreateTableCommand({
      DatabaseName: aws.glue.database,
      TableInput: {
        Name: name,
        StorageDescriptor: { Columns: columns.map((c) => ({ Name: c.name, Type: c.type })), Location: `s3://${aws.buckets[layer]}/${layer}/${name.slice(layer.length + 1)}/` },
        PartitionKeys: partitionKeys.map((c) => ({ Name: c.name, Type: c.type })),
        TableType: 'EXTERNAL_TABLE',
      },
    }),
  );
}

/**
 * A curated table as Iceberg's Glue catalog registers it on a curate's first commit (table_type
 * ICEBERG, the metadata file's location, the current schema's columns; no Glue partitions), at
 * s3://<curated bucket>/<source>. Nothing is written to S3: the activities read only the catalog.
 */
export async function createIcebergTable(world: MotoWorld, source: string, columns: CatalogColumn[]): Promise<void> {
  const aws = world.config.aws!;
  const location = `s3://${aws.buckets.curated}/${source}`;
  await world.clients.glue.send(
    new CreateTableCommand({
      DatabaseName: aws.glue.database,
      TableInput: {
        Name: source,
        TableType: 'EXTERNAL_TABLE',
        Parameters: { table_type: 'ICEBERG', metadata_location: `${location}/metadata/00000-0b1c.metadata.json` },
        StorageDescriptor: {
          Location: location,
          Columns: columns.map((c, i) => ({ Name: c.name, Type: c.type, Parameters: { 'iceberg.field.id': String(i + 1), 'iceberg.field.optional': 'true', 'iceberg.field.current': 'true' } })),
        },
      },
    }),
  );
}

/** The raw and curated crawlers, as infra/ defines them. */
export async function createCrawlers(world: MotoWorld): Promise<void> {
  const aws = world.config.aws!;
  for (const layer of ['raw', 'curated'] as const) {
    await world.clients.glue.send(
      new CreateCrawlerCommand({
        Name: layer === 'raw' ? aws.glue.rawCrawler : aws.glue.curatedCrawler,
        Role: 'arn:aws:iam::123456789012:role/smartcity-crawler',
        DatabaseName: aws.glue.database,
        TablePrefix: `${layer}_`,
        Targets: { S3Targets: [{ Path: `s3://${aws.buckets[layer]}/${layer}/` }] },
      }),
    );
  }
}

/** The curate Glue job running spark/jobs/curate.py. */
export async function createCurateJob(world: MotoWorld): Promise<void> {
  const aws = world.config.aws!;
  await world.clients.glue.send(
    new CreateJobCommand({
      Name: aws.glue.curateJob,
      Role: 'arn:aws:iam::123456789012:role/smartcity-glue',
      Command: { Name: 'glueetl', ScriptLocation: `s3://${aws.buckets.artifacts}/spark/jobs/curate.py`, PythonVersion: '3' },
      GlueVersion: '5.0',
      ExecutionProperty: { MaxConcurrentRuns: 3 },
    }),
  );
}

/** A running EMR cluster; returns its id (for SMARTCITY_EMR_CLUSTER_ID). */
export async function createEmrCluster(world: MotoWorld): Promise<string> {
  const out = await world.clients.emr.send(
    new RunJobFlowCommand({
      Name: 'smartcity-streaming',
      ReleaseLabel: 'emr-7.2.0',
      Instances: { InstanceCount: 1, MasterInstanceType: 'm5.xlarge', KeepJobFlowAliveWhenNoSteps: true },
      JobFlowRole: 'EMR_EC2_DefaultRole',
      ServiceRole: 'EMR_DefaultRole',
    }),
  );
  if (!out.JobFlowId) throw new Error('moto RunJobFlow returned no cluster id');
  return out.JobFlowId;
}
