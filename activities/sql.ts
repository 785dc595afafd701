// Building SQL text, for every engine the activities talk to: DuckDB (local), Athena (Trino) and
// Redshift (PostgreSQL-derived). All four quote identifiers and string literals the same,
// standard way, so one set of helpers serves them; values that can be bound as parameters
// (DuckDB) are bound instead.

/** A SQL identifier in double quotes, safe whatever the name holds. */
export function ident(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

/** A string literal in single quotes, safe whatever the value holds. */
export function sqlString(value: string): string {
  return `'${value.replaceAll("'", "''")}'`;
}

/** An ISO instant as a TIMESTAMP literal in UTC wall time, as Athena and Redshift both read it. */
export function timestampLiteral(iso: string): string {
  return `TIMESTAMP ${sqlString(iso.replace('T', ' ').replace('Z', ''))}`;
}

/** A result row by column name, as the Redshift Data API and Athena return them; NULL is null. */
export type Row = Record<string, string | number | boolean | null>;

/** A count or sum of a result row: NULL and an empty cell are 0. */
export function rowNumber(v: Row[string] | undefined): number {
  return v === null || v === undefined || v === '' ? 0 : Number(v);
}

/** A 64-bit sum of a result row (Athena may print it as `123.0`); NULL is 0. */
export function rowBigint(v: Row[string] | undefined): bigint {
  return v === null || v === undefined || v === '' ? 0n : BigInt(String(v).replace(/\.0*$/, ''));
}
