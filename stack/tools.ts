// Where scripts/setup.sh put each tool. One place, so every caller reports a missing tool alike.
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config';

export class MissingToolError extends Error {
  override name = 'MissingToolError';
}

function need(path: string, what: string): string {
  if (!existsSync(path)) throw new MissingToolError(`${what} not found at ${path}; run \`npm run setup\` first`);
  return path;
}

export const tools = {
  temporal: (c: Config) => need(join(c.toolsDir, 'venv', 'bin', 'temporal'), 'Temporal CLI'),
  temporalTestServer: (c: Config) => need(join(c.toolsDir, 'venv', 'bin', 'temporal-test-server'), 'Temporal test server'),
  python: (c: Config) => need(join(c.toolsDir, 'venv', 'bin', 'python'), 'Python venv'),
  sparkSubmit: (c: Config) => need(join(c.toolsDir, 'venv', 'bin', 'spark-submit'), 'spark-submit (PySpark)'),
  /** Runs a Spark class (the standalone Master and Worker) with PySpark's jars. */
  sparkClass: (c: Config) => need(join(c.toolsDir, 'venv', 'bin', 'spark-class'), 'spark-class (PySpark)'),
  /** Java classpath of the Kafka broker and its tools. */
  kafkaClasspath: (c: Config) => `${need(join(c.toolsDir, 'kafka', 'libs'), 'Kafka jars')}/*`,
  sparkJarsDir: (c: Config) => need(join(c.toolsDir, 'spark-jars'), 'Spark-Kafka connector jars'),
  sparkConnectJarsDir: (c: Config) => need(join(c.toolsDir, 'spark-connect'), 'Spark Connect server jar'),
  /** Iceberg's Spark runtime and the SQLite JDBC driver of the local catalog. */
  icebergJarsDir: (c: Config) => need(join(c.toolsDir, 'iceberg'), 'Iceberg Spark runtime jars'),
};

/** The jar files of a folder setup.sh filled, in a stable order; an error when there are none. */
export function jarsIn(dir: string): string[] {
  const jars = readdirSync(dir)
    .filter((f) => f.endsWith('.jar'))
    .sort()
    .map((f) => join(dir, f));
  if (jars.length === 0) throw new MissingToolError(`no jars in ${dir}; run \`npm run setup\` first`);
  return jars;
}
