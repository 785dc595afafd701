// SQL parsed by a real parser: sqlglot (PyPI, pinned in scripts/requirements-tools.txt) in the
// dialect of the engine that will run it, through test/helpers/sql_parse.py.
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { PROJECT_ROOT } from '../../config';

/** sqlglot's names: Athena's engine v3 is Trino (its DDL is Hive's); Redshift has its own. */
export type Dialect = 'athena' | 'trino' | 'redshift';

export interface Statement {
  dialect: Dialect;
  sql: string;
}

/** Per statement, in order: undefined when it parsed, else sqlglot's reason. */
export async function parseProblems(statements: Statement[]): Promise<(string | undefined)[]> {
  const python = join(PROJECT_ROOT, '.tools', 'venv', 'bin', 'python');
  const out = await new Promise<string>((resolve, reject) => {
    const child = execFile(python, [join(PROJECT_ROOT, 'test', 'helpers', 'sql_parse.py')], { maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) =>
      err ? reject(new Error(`sql_parse.py failed (is sqlglot installed? run scripts/setup.sh): ${stderr || err.message}`)) : resolve(stdout),
    );
    child.stdin?.end(JSON.stringify(statements));
  });
  return (JSON.parse(out) as (string | null)[]).map((p) => p ?? undefined);
}

/** `dialect: reason` for each statement that did not parse, with the statement. */
export async function unparsable(statements: Statement[]): Promise<string[]> {
  const problems = await parseProblems(statements);
  return statements.flatMap((s, i) => (problems[i] === undefined ? [] : [`${s.dialect}: ${problems[i]}\n  in: ${s.sql}`]));
}
