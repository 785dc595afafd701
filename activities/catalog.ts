// The local target's Glue crawler and Data Catalog: a crawl walks <lake>/<layer>/ and keeps, in
// <dataDir>/catalog.duckdb, one table per source and layer with its columns, partitions and the
// history of its schema changes.
import { LIST, listValue, VARCHAR, type DuckDBConnection } from '@duckdb/node-api';
import { ApplicationFailure } from '@temporalio/common';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import type { Config } from '../config';
import {
  describeParquet,
  fingerprint,
  inTransaction,
  lakeRoot,
  listParquet,
  partitionValues,
  queryRows,
  toText,
  withDatabase,
  type Column,
  type LakeFile,
} from './duckdb';
import { heartbeating } from './heartbeat';
import { describeChange, diffColumns } from './lake';
import type { CrawlResult, Layer, TimeWindow } from './types';

const LAYERS: readonly Layer[] = ['raw', 'curated'];

const SCHEMA = [
  `CREATE TABLE IF NOT EXISTS tables (
     name VARCHAR PRIMARY KEY,
     layer VARCHAR NOT NULL,
     source VARCHAR NOT NULL,
     location VARCHAR NOT NULL,
     partition_keys VARCHAR[] NOT NULL,
     created_at TIMESTAMPTZ NOT NULL,
     schema_changed_at TIMESTAMPTZ NOT NULL,
     crawled_at TIMESTAMPTZ NOT NULL)`,
  `CREATE TABLE IF NOT EXISTS table_columns (
     table_name VARCHAR NOT NULL,
     position INTEGER NOT NULL,
     name VARCHAR NOT NULL,
     type VARCHAR NOT NULL,
     PRIMARY KEY (table_name, name))`,
  `CREATE TABLE IF NOT EXISTS partitions (
     table_name VARCHAR NOT NULL,
     location VARCHAR NOT NULL,
     partition_values VARCHAR[] NOT NULL,
     file_count INTEGER NOT NULL,
     size_bytes BIGINT NOT NULL,
     fingerprint VARCHAR NOT NULL,
     columns VARCHAR NOT NULL,
     first_seen TIMESTAMPTZ NOT NULL,
     changed_at TIMESTAMPTZ NOT NULL,
     PRIMARY KEY (table_name, location))`,
  `CREATE TABLE IF NOT EXISTS schema_changes (
     table_name VARCHAR NOT NULL,
     changed_at TIMESTAMPTZ NOT NULL,
     change VARCHAR NOT NULL,
     column_name VARCHAR NOT NULL,
     old_type VARCHAR,
     new_type VARCHAR)`,
  `CREATE TABLE IF NOT EXISTS crawls (
     layer VARCHAR NOT NULL,
     started_at TIMESTAMPTZ NOT NULL,
     finished_at TIMESTAMPTZ NOT NULL,
     partitions_added INTEGER NOT NULL,
     partitions_removed INTEGER NOT NULL,
     schema_changes INTEGER NOT NULL)`,
];

export function catalogPath(config: Config): string {
  return join(config.dataDir, 'catalog.duckdb');
}

/** Folders under the layer that are tables (one per source); Spark's `_…`/`.…` folders are not. */
async function tableDirs(layerDir: string): Promise<string[]> {
  try {
    const entries = await readdir(layerDir, { withFileTypes: true });
    return entries.filter((e) => e.isDirectory() && !e.name.startsWith('_') && !e.name.startsWith('.')).map((e) => e.name).sort();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw err;
  }
}

interface Partition {
  location: string;
  values: [string, string][];
  files: LakeFile[];
  columns: Column[];
}

// batch_id=9 before batch_id=10: older partitions first, so columns keep the order they appeared in.
const folderOrder = new Intl.Collator('en', { numeric: true });

interface StoredPartition {
  fingerprint: string;
  columns: Column[];
}

interface TableCrawl {
  partitionsAdded: number;
  partitionsRemoved: number;
  changes: string[];
}

/**
 * Brings one table up to date with its folder. Only partitions that are new or whose files changed
 * have their Parquet footers read; the table's columns are the union of all partitions' columns.
 */
async function crawlTable(conn: DuckDBConnection, layer: Layer, source: string, location: string, now: string): Promise<TableCrawl | undefined> {
  const name = `${layer}_${source}`;
  const byFolder = new Map<string, LakeFile[]>();
  for (const file of await listParquet(location)) {
    const files = byFolder.get(file.partition) ?? [];
    files.push(file);
    byFolder.set(file.partition, files);
  }

  const stored = new Map<string, StoredPartition>();
  for (const r of await queryRows(conn, 'SELECT location, fingerprint, columns FROM partitions WHERE table_name = $name', { name })) {
    stored.set(toText(r.location), { fingerprint: toText(r.fingerprint), columns: JSON.parse(toText(r.columns)) as Column[] });
  }
  const table = (await queryRows(conn, 'SELECT 1 FROM tables WHERE name = $name', { name }))[0];
  if (!table && byFolder.size === 0) return undefined;

  const partitions: Partition[] = [];
  let partitionsAdded = 0;
  for (const [folder, files] of [...byFolder].sort(([a], [b]) => folderOrder.compare(a, b))) {
    const partitionLocation = folder ? join(location, folder) : location;
    const print = fingerprint(files);
    const known = stored.get(partitionLocation);
    let columns = known?.columns;
    if (!known || known.fingerprint !== print) {
      try {
        columns = await describeParquet(conn, files);
      } catch (err) {
        throw new Error(`crawl of ${name}: cannot read the Parquet files of ${partitionLocation}: ${(err as Error).message}`);
      }
      await conn.run(
        `INSERT INTO partitions VALUES ($name, $location, $values, $files, $bytes, $fingerprint, $columns, $now::TIMESTAMPTZ, $now::TIMESTAMPTZ)
         ON CONFLICT DO UPDATE SET partition_values = EXCLUDED.partition_values, file_count = EXCLUDED.file_count,
           size_bytes = EXCLUDED.size_bytes, fingerprint = EXCLUDED.fingerprint, columns = EXCLUDED.columns, changed_at = EXCLUDED.changed_at`,
        {
          name,
          location: partitionLocation,
          values: listValue(partitionValues(folder).map(([, value]) => value)),
          files: files.length,
          bytes: files.reduce((sum, f) => sum + f.size, 0),
          fingerprint: print,
          columns: JSON.stringify(columns),
          now,
        },
        { values: LIST(VARCHAR) },
      );
      if (!known) partitionsAdded++;
    }
    partitions.push({ location: partitionLocation, values: partitionValues(folder), files, columns: columns ?? [] });
  }
  const present = new Set(partitions.map((p) => p.location));
  const gone = [...stored.keys()].filter((loc) => !present.has(loc));
  for (const loc of gone) await conn.run('DELETE FROM partitions WHERE table_name = $name AND location = $loc', { name, loc });

  const before = (await queryRows(conn, 'SELECT name, type FROM table_columns WHERE table_name = $name ORDER BY position', { name })).map((r) => ({
    name: toText(r.name),
    type: toText(r.type),
  }));
  // With every file gone the table keeps its last known schema, as a Glue table does.
  const after = partitions.length > 0 ? await tableColumns(conn, partitions) : before;
  const changes = table ? diffColumns(before, after) : [];
  const keys = partitions[0]?.values.map(([key]) => key) ?? [];

  await conn.run(
    `INSERT INTO tables VALUES ($name, $layer, $source, $location, $keys, $now::TIMESTAMPTZ, $now::TIMESTAMPTZ, $now::TIMESTAMPTZ)
     ON CONFLICT DO UPDATE SET partition_keys = EXCLUDED.partition_keys, crawled_at = EXCLUDED.crawled_at,
       schema_changed_at = CASE WHEN $changed THEN EXCLUDED.schema_changed_at ELSE tables.schema_changed_at END`,
    { name, layer, source, location, keys: listValue(keys), now, changed: changes.length > 0 },
    { keys: LIST(VARCHAR) },
  );
  if (JSON.stringify(before) !== JSON.stringify(after)) {
    await conn.run('DELETE FROM table_columns WHERE table_name = $name', { name });
    for (const [position, column] of after.entries()) {
      await conn.run('INSERT INTO table_columns VALUES ($name, $position, $column, $type)', { name, position, column: column.name, type: column.type });
    }
  }
  for (const c of changes) {
    await conn.run('INSERT INTO schema_changes VALUES ($name, $now::TIMESTAMPTZ, $change, $column, $old, $new)', {
      name,
      now,
      change: c.change,
      column: c.column,
      old: c.oldType,
      new: c.newType,
    });
  }
  return { partitionsAdded, partitionsRemoved: gone.length, changes: changes.map((c) => describeChange(name, c)) };
}

/**
 * The table's columns as a query over all its files sees them. Partitions mostly share one schema:
 * reading the files of one partition per distinct schema lets DuckDB merge them (order of first
 * appearance, common supertype on a type conflict) without opening every file.
 */
async function tableColumns(conn: DuckDBConnection, partitions: Partition[]): Promise<Column[]> {
  const representatives = new Map<string, Partition>();
  for (const p of partitions) {
    const key = JSON.stringify(p.columns);
    if (!representatives.has(key)) representatives.set(key, p);
  }
  const distinct = [...representatives.values()];
  if (distinct.length === 1) return distinct[0]!.columns;
  return describeParquet(conn, distinct.flatMap((p) => p.files));
}

export function catalogActivities(config: Config) {
  const database = catalogPath(config);
  return {
    /**
     * Crawls the whole layer, not only the window's partitions: late events land in old
     * partitions and a table's schema covers all its files. Unchanged partitions cost one stat per
     * file, so a crawl stays cheap as the lake grows.
     */
    async crawlLayer(input: { layer: Layer; window: TimeWindow }): Promise<CrawlResult> {
      const { layer } = input;
      if (!LAYERS.includes(layer)) throw ApplicationFailure.nonRetryable(`unknown layer ${JSON.stringify(layer)}; expected raw or curated`, 'InvalidInput');
      const startedAt = new Date().toISOString();
      // Curated tables are Iceberg tables: each commit registers its table and schema in the
      // Iceberg catalog (activities/iceberg.ts), so there is nothing to crawl. Batch runs recorded
      // before the change still call this; they get an empty crawl.
      if (layer === 'curated') return { layer, tables: [], partitionsAdded: 0, schemaChanges: [], startedAt };
      const layerDir = join(lakeRoot(config), layer);
      return heartbeating(() => withDatabase(database, async (conn) => {
        for (const statement of SCHEMA) await conn.run(statement);
        return inTransaction(conn, async () => {
          let partitionsAdded = 0;
          let partitionsRemoved = 0;
          const schemaChanges: string[] = [];
          for (const source of await tableDirs(layerDir)) {
            const crawled = await crawlTable(conn, layer, source, join(layerDir, source), startedAt);
            if (!crawled) continue;
            partitionsAdded += crawled.partitionsAdded;
            partitionsRemoved += crawled.partitionsRemoved;
            schemaChanges.push(...crawled.changes);
          }
          await conn.run('INSERT INTO crawls VALUES ($layer, $startedAt::TIMESTAMPTZ, now(), $added, $removed, $changes)', {
            layer,
            startedAt,
            added: partitionsAdded,
            removed: partitionsRemoved,
            changes: schemaChanges.length,
          });
          const tables = await queryRows(conn, 'SELECT name FROM tables WHERE layer = $layer ORDER BY name', { layer });
          return { layer, tables: tables.map((t) => toText(t.name)), partitionsAdded, schemaChanges, startedAt };
        });
      }));
    },
  };
}
