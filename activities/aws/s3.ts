// The lake on S3: URIs of the layout (one bucket per layer; raw and quarantine in the same folders
// as the local lake, curated as Iceberg tables at the curated bucket's root), landing checks (when
// did the window's data last change) and small JSON artifacts such as the curate job's run summary.
import { GetObjectCommand, ListObjectsV2Command, paginateListObjectsV2, type _Object } from '@aws-sdk/client-s3';
import type { AwsSettings } from '../../config';
import { SOURCES } from '../../schemas';
import { hourPartitions, parseWindow } from '../lake';
import type { TimeWindow } from '../types';
import type { AwsDeps } from './clients';
import { awsCall, awsFailure, classifyAwsError } from './errors';

export type LakeLayer = 'raw' | 'quarantine' | 'curated';

export function s3Uri(bucket: string, key = ''): string {
  return `s3://${bucket}/${key}`;
}

/** `s3://<bucket of the layer>/<layer>/`: the root the Spark jobs write and the crawler reads (raw, quarantine; curated before it was Iceberg). */
export function layerRoot(aws: AwsSettings, layer: LakeLayer): string {
  return s3Uri(aws.buckets[layer], `${layer}/`);
}

/**
 * `s3://<curated bucket>`: the curate job's --curated_root and its Iceberg catalog's warehouse.
 * Each source's table lives at `<root>/<source>` (data/ and metadata/ below it), apart from the
 * Parquet folders under curated/ that the curated layer had before it was Iceberg.
 */
export function curatedRoot(aws: AwsSettings): string {
  return `s3://${aws.buckets.curated}`;
}

export function checkpointRoot(aws: AwsSettings, jobName: string): string {
  return s3Uri(aws.buckets.checkpoints, `checkpoints/${jobName}/`);
}

/**
 * Where the streaming job keeps its progress lines: `_progress/<job>.jsonl` in the checkpoints
 * bucket, as `<lake>/_progress/<job>.jsonl` locally. The step is told this location and the
 * watch reads it, so both sides name it alike.
 */
export function progressLocation(aws: AwsSettings, jobName: string): { bucket: string; key: string } {
  return { bucket: aws.buckets.checkpoints, key: `_progress/${jobName}.jsonl` };
}

/** Keys of the Spark code in the artifacts bucket: infra/ uploads it there, the activities run it from there. */
export const SPARK_ARTIFACTS = {
  prefix: 'spark/',
  curateScript: 'spark/jobs/curate.py',
  streamIngestScript: 'spark/jobs/stream_ingest.py',
  pyFiles: 'spark/smartcity_spark.zip',
  schemasDir: 'spark/schemas/',
  /** EMR bootstrap action: the Python packages the ingest job imports on every node (pyarrow, pandas). */
  emrBootstrap: 'spark/bootstrap/emr-python-packages.sh',
} as const;

export function scriptUri(aws: AwsSettings, artifact: keyof typeof SPARK_ARTIFACTS): string {
  return s3Uri(aws.buckets.artifacts, SPARK_ARTIFACTS[artifact]);
}

/**
 * Where the curate job writes the summary of its run over a window: the name its own default
 * gives under a lake root (`20260302T090000000000Z_…`), so both targets name a window alike.
 */
export function curateSummaryKey(window: TimeWindow): string {
  const w = parseWindow(window);
  const stamp = (iso: string) => `${iso.slice(0, 19).replace(/[-:]/g, '')}${iso.slice(20, 23)}000Z`;
  return `_runs/curate/${stamp(w.from)}_${stamp(w.to)}.json`;
}

/** Every object whose key starts with `prefix`. */
export async function listObjects(deps: AwsDeps, bucket: string, prefix: string): Promise<_Object[]> {
  const objects: _Object[] = [];
  await awsCall(`s3:ListBucket on ${s3Uri(bucket, prefix)}`, async () => {
    for await (const page of paginateListObjectsV2({ client: deps.clients.s3 }, { Bucket: bucket, Prefix: prefix })) objects.push(...(page.Contents ?? []));
  });
  return objects;
}

/** True when at least one object's key starts with `prefix`. */
export async function hasObjects(deps: AwsDeps, bucket: string, prefix: string): Promise<boolean> {
  return awsCall(`s3:ListBucket on ${s3Uri(bucket, prefix)}`, async () => {
    const out = await deps.clients.s3.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, MaxKeys: 1 }));
    return (out.KeyCount ?? out.Contents?.length ?? 0) > 0;
  });
}

/**
 * The latest LastModified of the layer's objects in the window's hour partitions, over every
 * source (S3's clock, the same one Glue stamps a crawl's start with); undefined when none landed.
 */
export async function latestLanding(deps: AwsDeps, layer: 'raw' | 'curated', window: TimeWindow): Promise<Date | undefined> {
  const bucket = deps.aws.buckets[layer];
  let latest: Date | undefined;
  for (const source of SOURCES) {
    for (const partition of hourPartitions(parseWindow(window))) {
      for (const object of await listObjects(deps, bucket, `${layer}/${source}/${partition}/`)) {
        if (object.LastModified && (!latest || object.LastModified > latest)) latest = object.LastModified;
      }
    }
  }
  return latest;
}

/** Bytes [start, end) of an object. */
export async function readRange(deps: AwsDeps, bucket: string, key: string, start: number, end: number): Promise<ArrayBuffer> {
  return awsCall(`s3:GetObject on ${s3Uri(bucket, key)}`, async () => {
    const object = await deps.clients.s3.send(new GetObjectCommand({ Bucket: bucket, Key: key, Range: `bytes=${start}-${end - 1}` }));
    const bytes = (await object.Body?.transformToByteArray()) ?? new Uint8Array();
    return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.byteLength) as ArrayBuffer;
  });
}

/** The text of s3://bucket/key, or undefined when there is none. */
export async function readText(deps: AwsDeps, bucket: string, key: string): Promise<string | undefined> {
  try {
    const object = await deps.clients.s3.send(new GetObjectCommand({ Bucket: bucket, Key: key }));
    return await object.Body?.transformToString('utf8');
  } catch (err) {
    if (classifyAwsError(err).kind === 'not-found') return undefined;
    throw awsFailure(err, `s3:GetObject on ${s3Uri(bucket, key)}`);
  }
}

/** The JSON object at s3://bucket/key, or undefined when there is none. */
export async function readJson(deps: AwsDeps, bucket: string, key: string): Promise<unknown> {
  const body = await readText(deps, bucket, key);
  if (body === undefined) return undefined;
  try {
    return JSON.parse(body) as unknown;
  } catch (err) {
    throw new Error(`${s3Uri(bucket, key)} is not JSON: ${(err as Error).message}`);
  }
}
