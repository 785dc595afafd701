// Real Parquet files for tests that read them from S3 (moto or mocked): written by DuckDB.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { withDatabase } from '../../activities/duckdb';

/** A Parquet file of `rows` quarantine-shaped records, as bytes. */
export async function quarantineParquet(rows: number): Promise<Uint8Array> {
  const dir = mkdtempSync(join(tmpdir(), 'smartcity-parquet-'));
  try {
    const file = join(dir, 'part.parquet');
    await withDatabase(undefined, (conn) => conn.run(`COPY (SELECT 'not json' AS value, 'invalid JSON' AS reason, range AS kafka_offset FROM range(${rows})) TO '${file}' (FORMAT PARQUET)`));
    return new Uint8Array(readFileSync(file));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
