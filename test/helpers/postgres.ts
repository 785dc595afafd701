// PostgreSQL for tests that run warehouse SQL on a real engine: the cluster scripts/test.sh
// started (SMARTCITY_TEST_POSTGRES_PORT) or, when a developer runs one file, a throwaway one of
// its own (scripts/postgres.sh, free loopback port, temporary folder), stopped afterwards. Each
// test gets a database of its own, so files may share the cluster. Statements go through psql.
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../config';
import { freePort } from './free-port';

function run(file: string, args: string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile(file, args, { maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => (err ? reject(new Error(`${file} ${args.join(' ')}: ${stderr || err.message}`)) : resolve(stdout)));
    child.stdin?.end(input ?? '');
  });
}

function psqlPath(): string {
  const root = '/usr/lib/postgresql';
  const versions = existsSync(root) ? readdirSync(root).sort((a, b) => Number(b) - Number(a)) : [];
  const found = versions.map((v) => join(root, v, 'bin', 'psql')).find(existsSync);
  if (!found) throw new Error('PostgreSQL is not installed: run scripts/setup.sh --browser (apt-get install postgresql)');
  return found;
}

/** A result row by column name; NULL is null. */
export type PgRow = Record<string, string | null>;

export interface PgDatabase {
  name: string;
  /** Runs the statements in one session (in one transaction with `transaction`), stopping at the first error. */
  run(statements: string[], opts?: { transaction?: boolean }): Promise<void>;
  /** The rows of one query, every value as PostgreSQL prints it. */
  query(sql: string): Promise<PgRow[]>;
}

export interface Postgres {
  port: number;
  /** A new, empty database. */
  database(): Promise<PgDatabase>;
  stop(): Promise<void>;
}

export async function startPostgres(): Promise<Postgres> {
  const psql = psqlPath();
  const script = join(PROJECT_ROOT, 'scripts', 'postgres.sh');
  const shared = process.env.SMARTCITY_TEST_POSTGRES_PORT;
  let port: number;
  let stop = async () => {};
  if (shared) {
    port = Number(shared);
  } else {
    port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), 'smartcity-pg-'));
    await run('bash', [script, 'start', dir, String(port)]);
    stop = async () => {
      await run('bash', [script, 'stop', dir]);
      rmSync(dir, { recursive: true, force: true });
    };
  }
  const connect = (db: string) => ['-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', String(port), '-U', 'postgres', '-d', db];
  return {
    port,
    stop,
    async database() {
      const name = `t_${randomUUID().replaceAll('-', '').slice(0, 16)}`;
      await run(psql, [...connect('postgres'), '-c', `CREATE DATABASE ${name}`]);
      // Unaligned output, fields and NULLs marked by control characters no value here holds.
      const FIELD = '\x1f';
      const NULL = '\x1e';
      return {
        name,
        async run(statements, opts = {}) {
          await run(psql, [...connect(name), ...(opts.transaction ? ['--single-transaction'] : []), '-f', '-'], statements.map((s) => `${s};\n`).join(''));
        },
        async query(sql) {
          const out = await run(psql, [...connect(name), '-A', '-F', FIELD, '-P', 'footer=off', '-P', `null=${NULL}`, '-c', sql]);
          const [header = '', ...lines] = out.split('\n').filter((line) => line !== '');
          const names = header.split(FIELD);
          return lines.map((line) => Object.fromEntries(line.split(FIELD).map((v, i) => [names[i] ?? String(i), v === NULL ? null : v])));
        },
      };
    },
  };
}
