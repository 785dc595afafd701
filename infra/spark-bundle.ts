// The PySpark code as the aws target runs it, laid out for the artifacts bucket under `spark/`:
// the two job scripts, the shared package zipped (Glue's --extra-py-files and spark-submit's
// --py-files take a .zip, not a folder) and the event contracts. Built at synth time from this
// checkout, so a deploy always ships the code that was tested; the zip is byte-for-byte
// reproducible (fixed timestamps, sorted entries), so an unchanged tree keeps its asset hash and
// a deploy uploads nothing.
import { crc32, deflateRawSync } from 'node:zlib';
import { mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { SPARK_ARTIFACTS } from '../activities/aws/s3';
import { PROJECT_ROOT } from '../config';

export { SPARK_ARTIFACTS };

const JOBS = ['curate.py', 'stream_ingest.py'];

const u16 = (n: number) => {
  const b = Buffer.alloc(2);
  b.writeUInt16LE(n);
  return b;
};
const u32 = (n: number) => {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(n);
  return b;
};

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
    // The fields the local header and the central directory entry share, in the same order.
    const shared = Buffer.alloc(26);
    shared.writeUInt16LE(20, 0); // version needed: 2.0 (deflate)
    shared.writeUInt16LE(0x0800, 2); // UTF-8 names
    shared.writeUInt16LE(8, 4); // deflate
    shared.writeUInt16LE(dosTime, 6);
    shared.writeUInt16LE(dosDate, 8);
    shared.writeUInt32LE(crc, 10);
    shared.writeUInt32LE(data.length, 14);
    shared.writeUInt32LE(content.length, 18);
    shared.writeUInt16LE(nameBytes.length, 22);
    const local = Buffer.concat([u32(0x04034b50), shared]);
    // comment length, disk, internal attributes (all 0), external attributes, local header offset
    const tail = Buffer.alloc(14);
    tail.writeUInt32LE((0o100644 << 16) >>> 0, 6); // a regular file, rw-r--r--
    tail.writeUInt32LE(offset, 10);
    const central = Buffer.concat([u32(0x02014b50), u16((3 << 8) | 20) /* made by: unix, 2.0 */, shared, tail]);
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
