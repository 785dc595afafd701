"""Parses SQL statements with sqlglot, each in its dialect, for test/helpers/sqlglot.ts.

Reads a JSON list of {"dialect": ..., "sql": ...} on stdin and prints a JSON list with, per
statement, null when it parsed as exactly one statement sqlglot understands, else why not.
A statement sqlglot cannot place falls back to an opaque Command: that counts as a failure too,
since nothing in it was checked.
"""
import json
import logging
import re
import sys

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, SqlglotError

# sqlglot logs its Command fallbacks; they are reported as failures instead.
logging.getLogger("sqlglot").setLevel(logging.CRITICAL)


def problem(dialect: str, sql: str) -> str | None:
    try:
        trees = [t for t in sqlglot.parse(sql, read=dialect, error_level=ErrorLevel.RAISE) if t is not None]
    except SqlglotError as err:
        return re.sub(r"\x1b\[[0-9;]*m", "", f"{type(err).__name__}: {err}")
    if len(trees) != 1:
        return f"expected one statement, parsed {len(trees)}"
    if isinstance(trees[0], exp.Command):
        return "not understood: sqlglot fell back to an opaque command"
    return None


def main() -> None:
    statements = json.load(sys.stdin)
    json.dump([problem(s["dialect"], s["sql"]) for s in statements], sys.stdout)


if __name__ == "__main__":
    main()
