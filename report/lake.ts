// What the local target holds on disk: rows per source in the lake's layers, the catalog's tables
// and the warehouse's tables and loaded windows. The report runs beside a worker that writes these
// files: database files are opened read-only (withDatabase waits out the worker's short-lived
// lock), Parquet is read through an in-memory database, and a file Spark swaps away between the
// listing and the read makes the count start again instead of failing the report.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import type { DuckDBConnection } from '@duckdb/node-api';
import type { Config } from '../config';
import { catalogPath } from '../activities/catalog';
import { curatedFiles, curatedParams, curatedScan } from '../activities/iceberg';
import { fileList, ident, lakeRoot, listParquet, parseWindow, queryRows, scanParquet, tableColumnNames, toNumber, toText, withDatabase } from '../activities/duckdb';
import { zeroCounts } from '../activities/lake';
import type { SourceCounts, TimeWindow } from '../activities/types';
import { warehousePath } from '../activities/warehouse';
import { SOURCES, type Source } from '../schemas';

export const LAKE_LAYERS = ['raw', 'quarantine', 'curated'] as const;
export type LakeLayer = (typeof LAKE_LAYERS)[number];

export interface SourceRows {
  raw: number;
  quarantine: number;
  curated: number;
  warehouse: number;
}

export interface LoadedWindow extends TimeWindow {
  /** Warehouse rows per source after the window's last load. */
  rows: SourceCounts;
  loadedAt: string;
}

export interface CatalogTable {
  name: string;
  layer: string;
  source: string;
  partitions: number;
  columns: number;
  crawledAt: string;
}

export interface StoredState {
  sources: Record<Source, SourceRows>;
  loadedWindows: LoadedWindow[];
  catalog: CatalogTable[];
  /** What is not there yet (no warehouse before the first load, …), in words. */
  notes: string[];
}

const READ_ATTEMPTS = 3;

/** Spark replaced or removed a listed file before DuckDB opened it. */
function isVanishedFile(err: unknown): boolean {
  return err instanceof Error && /No such file|does not exist|cannot open file|IO Error/i.test(err.message);
}

/** Runs `read` again (it lists the files afresh) when a listed file vanished under it. */
export async function readLake<T>(read: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await read();
    } catch (err) {
      if (attempt >= READ_ATTEMPTS || !isVanishedFile(err)) throw err;
    }
  }
}

const ALL_TIME = parseWindow({ from: '1970-01-01T00:00:00Z', to: '9999-12-31T00:00:00Z' });

export function layerRoot(config: Config, layer: LakeLayer, source: Source): string {
  return join(lakeRoot(config), layer, source);
}

async function countLayer(conn: DuckDBConnection, config: Config, layer: LakeLayer, source: Source): Promise<number> {
  if (layer === 'curated') {
    // An Iceberg table: its current snapshot's files minus their deleted rows.
    const files = await curatedFiles(config, source, ALL_TIME);
    if (files.data.length === 0) return 0;
    const [row] = await queryRows(conn, `SELECT count(*) AS n FROM ${curatedScan(files, 'curated')}`, curatedParams(files, 'curated'));
    return toNumber(row?.n);
  }
  return readLake(async () => {
    const files = await listParquet(layerRoot(config, layer, source));
    if (files.length === 0) return 0;
    const [row] = await queryRows(conn, `SELECT count(*) AS n FROM ${scanParquet('$files')}`, { files: fileList(files) });
    return toNumber(row?.n);
  });
}

/** Rows per source in one layer of the lake, as landed. */
export async function countLayerRows(config: Config, layer: LakeLayer): Promise<SourceCounts> {
  return withDatabase(undefined, async (conn) => {
    const counts = {} as SourceCounts;
    for (const source of SOURCES) counts[source] = await countLayer(conn, config, layer, source);
    return counts;
  });
}

const epochIso = (value: Parameters<typeof toNumber>[0]) => new Date(toNumber(value)).toISOString();

async function hasTable(conn: DuckDBConnection, table: string): Promise<boolean> {
  return (await tableColumnNames(conn, table)).length > 0;
}

async function readWarehouse(config: Config): Promise<{ rows: SourceCounts; loadedWindows: LoadedWindow[] } | undefined> {
  const path = warehousePath(config);
  if (!existsSync(path)) return undefined;
  return withDatabase(
    path,
    async (conn) => {
      const rows = zeroCounts();
      for (const source of SOURCES) {
        if (!(await hasTable(conn, source))) continue;
        const [row] = await queryRows(conn, `SELECT count(*) AS n FROM ${ident(source)}`);
        rows[source] = toNumber(row?.n);
      }
      const byWindow = new Map<string, LoadedWindow>();
      if (await hasTable(conn, 'loaded_windows')) {
        const loaded = await queryRows(
          conn,
          `SELECT epoch_ms(window_from) AS from_ms, epoch_ms(window_to) AS to_ms, source, row_count, epoch_ms(loaded_at) AS loaded_ms
           FROM loaded_windows ORDER BY window_from, source`,
        );
        for (const r of loaded) {
          const from = epochIso(r.from_ms);
          const entry = byWindow.get(from) ?? {
            from,
            to: epochIso(r.to_ms),
            rows: zeroCounts(),
            loadedAt: epochIso(r.loaded_ms),
          };
          const source = toText(r.source);
          if ((SOURCES as readonly string[]).includes(source)) entry.rows[source as Source] = toNumber(r.row_count);
          byWindow.set(from, entry);
        }
      }
      return { rows, loadedWindows: [...byWindow.values()] };
    },
    { readOnly: true },
  );
}

async function readCatalog(config: Config): Promise<CatalogTable[] | undefined> {
  const path = catalogPath(config);
  if (!existsSync(path)) return undefined;
  return withDatabase(
    path,
    async (conn) => {
      if (!(await hasTable(conn, 'tables'))) return [];
      const rows = await queryRows(
        conn,
        `SELECT t.name, t.layer, t.source, epoch_ms(t.crawled_at) AS crawled_ms,
                (SELECT count(*) FROM partitions p WHERE p.table_name = t.name) AS partitions,
                (SELECT count(*) FROM table_columns c WHERE c.table_name = t.name) AS columns
         FROM tables t ORDER BY t.layer, t.source`,
      );
      return rows.map((r) => ({
        name: toText(r.name),
        layer: toText(r.layer),
        source: toText(r.source),
        partitions: toNumber(r.partitions),
        columns: toNumber(r.columns),
        crawledAt: epochIso(r.crawled_ms),
      }));
    },
    { readOnly: true },
  );
}

/** Rows per source and layer, the loaded windows and the catalog; whatever exists so far. */
export async function readStoredState(config: Config): Promise<StoredState> {
  const notes: string[] = [];
  const sources = Object.fromEntries(SOURCES.map((s) => [s, { raw: 0, quarantine: 0, curated: 0, warehouse: 0 }])) as Record<Source, SourceRows>;
  for (const layer of LAKE_LAYERS) {
    const counts = await countLayerRows(config, layer);
    for (const source of SOURCES) sources[source][layer] = counts[source];
  }
  if (SOURCES.every((s) => sources[s].raw === 0 && sources[s].quarantine === 0)) {
    notes.push(`the lake (${lakeRoot(config)}) holds no events yet: the streaming job has not landed any`);
  }
  const warehouse = await readWarehouse(config);
  if (warehouse) for (const source of SOURCES) sources[source].warehouse = warehouse.rows[source];
  else notes.push('no warehouse yet: no window has been loaded');
  const catalog = await readCatalog(config);
  if (catalog === undefined) notes.push('no catalog yet: nothing has been crawled');
  return { sources, loadedWindows: warehouse?.loadedWindows ?? [], catalog: catalog ?? [], notes };
}
