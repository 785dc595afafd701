// The PySpark code as the aws target runs it, laid out for the artifacts bucket under `spark/`:
// the two job scripts, the shared package zipped (Glue's --extra-py-files and spark-submit's
// --py-files take a .zip, not a folder) and the event contracts. Built at synth time from this
// checkout, so a deploy always ships the code that was tested; the zip is byte-for-byte
// reproducible (fixed timestamps, sorted entries), so an unchanged tree keeps its asset hash and
// a deploy uploads nothing.
import { crc32, deflateRawSync } from 'node:zlib';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../config';

/** Keys under the artifacts bucket; the aws activities and the stack both point at these. */
export const SPARK_ARTIFACTS = {
  prefix: 'spark/',
  curateScript: 'spark/jobs/curate.py',
  streamIngestScript: 'spark/jobs/stream_ingest.py',
  pyFiles: 'spark/smartcity_spark.zip',
  schemasDir: 'spark/schemas/',
} as const;

const JOBS = ['curate.py', 'stream_ingest.py'];

/** A zip archive (deflate) of name → content, entries in the given order. */
export function zip(entries: [string, Buffer][]): Buffer {
  const locals: Buffer[] = [];
  const centrals: Buffer[] = [];
  let offset = 0;
  // 1980-01-01 00:00, the earliest DOS date: a fixed time keeps the archive reproducible.
  const dosTime = 0;
  const dosDate = (0 << 9) | (1 << 5) | 1;
  for (const [name, content] of entries) {
    const nameBytes = Buffer.from(name, 'utf8');
    const data = deflateRawSync(content);
    const crc = crc32(content);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4); // version needed: 2.0 (deflate)
    local.writeUInt16LE(0x0800, 6); // UTF-8 names
    local.writeUInt16LE(8, 8); // deflate
    local.writeUInt16LE(dosTime, 10);
    local.writeUInt16LE(dosDate, 12);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(data.length, 18);
    local.writeUInt32LE(content.length, 22);
    local.writeUInt16LE(nameBytes.length, 26);
    local.writeUInt16LE(0, 28);
    const central = Buffer.alloc(46);
    central.writeUInt32LE(0x02014b50, 0);
    central.writeUInt16LE((3 << 8) | 20, 4); // made by: unix, 2.0
    central.writeUInt16LE(20, 6);
    central.writeUInt16LE(0x0800, 8);
    central.writeUInt16LE(8, 10);
    central.writeUInt16LE(dosTime, 12);
    central.writeUInt16LE(dosDate, 14);
    central.writeUInt32LE(crc, 16);
    central.writeUInt32LE(data.length, 20);
    central.writeUInt32LE(content.length, 24);
    central.writeUInt16LE(nameBytes.length, 28);
    central.writeUInt32LE((0o100644 << 16) >>> 0, 38); // external attributes: a regular file, rw-r--r--
    central.writeUInt32LE(offset, 42);
    locals.push(local, nameBytes, data);
    centrals.push(central, nameBytes);
    offset += local.length + nameBytes.length + data.length;
  }
  const centralSize = centrals.reduce((n, b) => n + b.length, 0);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(entries.length, 8);
  end.writeUInt16LE(entries.length, 10);
  end.writeUInt32LE(centralSize, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...locals, ...centrals, end]);
}

function filesOf(dir: string, suffix: string): string[] {
  return readdirSync(dir)
    .filter((name) => name.endsWith(suffix))
    .sort();
}

/**
 * Writes the bundle into `outDir` (emptied first): the layout below SPARK_ARTIFACTS.prefix, i.e.
 * jobs/*.py, smartcity_spark.zip, schemas/*.json. Returns outDir.
 */
export function buildSparkBundle(outDir: string, root: string = PROJECT_ROOT): string {
  rmSync(outDir, { recursive: true, force: true });
  const relative = (key: string) => key.slice(SPARK_ARTIFACTS.prefix.length);
  mkdirSync(join(outDir, 'jobs'), { recursive: true });
  for (const job of JOBS) writeFileSync(join(outDir, 'jobs', job), readFileSync(join(root, 'spark', 'jobs', job)));

  const packageDir = join(root, 'spark', 'smartcity_spark');
  const modules = filesOf(packageDir, '.py').map((name): [string, Buffer] => [`smartcity_spark/${name}`, readFileSync(join(packageDir, name))]);
  writeFileSync(join(outDir, relative(SPARK_ARTIFACTS.pyFiles)), zip(modules));

  const schemasOut = join(outDir, relative(SPARK_ARTIFACTS.schemasDir));
  mkdirSync(schemasOut, { recursive: true });
  const schemasDir = join(root, 'schemas', 'v1');
  for (const name of filesOf(schemasDir, '.json')) writeFileSync(join(schemasOut, name), readFileSync(join(schemasDir, name)));
  return outDir;
}
