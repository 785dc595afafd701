// Who may use a database file and the curated layer at the same time, within one worker: writers
// of a DuckDB file take turns while readers run beside them; curate has the curated layer to
// itself while loads and checks share it. Checked on a real DuckDB file.
import { after, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { queryRows, withDatabase } from '../../activities/duckdb';
import { PROJECT_ROOT } from '../../config';

const dir = mkdtempSync(join(tmpdir(), 'smartcity-turns-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** A promise with its resolver, to hold a call open until the test lets it go. */
function gate(): { opened: Promise<void>; open: () => void } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => (open = resolve));
  return { opened, open };
}

describe('withDatabase on one file', () => {
  const file = join(dir, 'turns.duckdb');

  test('writers take turns; readers run beside a writer and see only what it committed', { timeout: 10_000 }, async () => {
    await withDatabase(file, (conn) => conn.run('CREATE TABLE t (n INTEGER)'));
    const events: string[] = [];
    const holdWriter = gate();
    const first = withDatabase(file, async (conn) => {
      events.push('writer 1 in');
      await conn.run('BEGIN TRANSACTION');
      await conn.run('INSERT INTO t VALUES (1)');
      await holdWriter.opened;
      await conn.run('COMMIT');
      events.push('writer 1 out');
    });
    const second = withDatabase(file, async () => {
      events.push('writer 2 in');
    });
    await sleep(50);
    const seen = await Promise.all(
      [1, 2].map(() => withDatabase(file, async (conn) => (await queryRows(conn, 'SELECT count(*)::INTEGER AS n FROM t'))[0]?.n, { readOnly: true })),
    );
    assert.deepEqual(seen, [0, 0], 'readers ran while the writer held its transaction open, and saw none of it');
    assert.deepEqual(events, ['writer 1 in'], 'the second writer waits for the first');
    holdWriter.open();
    await Promise.all([first, second]);
    assert.deepEqual(events, ['writer 1 in', 'writer 1 out', 'writer 2 in']);
    const [row] = await withDatabase(file, (conn) => queryRows(conn, 'SELECT count(*)::INTEGER AS n FROM t'), { readOnly: true });
    assert.equal(row?.n, 1);
  });

  test('a writer after readers of a read-only instance reopens the file for writing', { timeout: 10_000 }, async () => {
    await sleep(200); // the read-write instance of the test before is released: the reader opens read-only
    const holdReader = gate();
    const reader = withDatabase(file, async (conn) => {
      await holdReader.opened;
      return (await queryRows(conn, 'SELECT count(*)::INTEGER AS n FROM t'))[0]?.n;
    }, { readOnly: true });
    let wrote = false;
    const writer = withDatabase(file, async (conn) => {
      await conn.run('INSERT INTO t VALUES (2)');
      wrote = true;
    });
    await sleep(50);
    assert.equal(wrote, false, 'the writer waits for the reader of the read-only instance');
    holdReader.open();
    await Promise.all([reader, writer]);
    assert.equal(wrote, true);
  });

  test('the file is released once idle: another process opens it', async () => {
    await withDatabase(file, (conn) => conn.run('INSERT INTO t VALUES (3)'));
    await sleep(200);
    const script = `
      const { DuckDBInstance } = require('@duckdb/node-api');
      DuckDBInstance.create(process.argv[1]).then(async (db) => {
        const conn = await db.connect();
        console.log(String((await conn.runAndReadAll('SELECT count(*) FROM t')).getRows()[0][0]));
        conn.disconnectSync();
        db.closeSync();
      });`;
    const out = execFileSync(process.execPath, ['-e', script, file], { cwd: PROJECT_ROOT, encoding: 'utf8' });
    assert.equal(out.trim(), '3');
  });
});
