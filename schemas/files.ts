import { join } from 'node:path';

/** Folder of the current (v1) event contracts; PySpark reads the same files. */
export const SCHEMA_DIR = join(__dirname, 'v1');

/** One file per event source, in the order sources are listed everywhere. */
export const SOURCE_FILES = ['vehicle.json', 'gps.json', 'traffic.json', 'weather.json', 'emergency.json'] as const;
