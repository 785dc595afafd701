"""Parses SQL statements with sqlglot, each in its dialect, for test/helpers/sqlglot.ts.

Reads a JSON list of {"dialect": ..., "sql": ...} on stdin and prints a JSON list with, per
statement, null when it parsed as exactly one statement sqlglot understands, else why not.
A statement sqlglot cannot place falls back to an opaque Command: that counts as a failure too,
since nothing in it was checked. One exception, checked here instead: Redshift's CREATE EXTERNAL
SCHEMA … FROM DATA CATALOG (sqlglot 30 has no grammar for it), whose tokens (sqlglot's Redshift
tokenizer) must follow the documented syntax, docs.aws.amazon.com/redshift/latest/dg/r_CREATE_EXTERNAL_SCHEMA.html,
in the part of it the activities use.
"""
import json
import logging
import re
import sys

import sqlglot
from sqlglot import exp
from sqlglot.errors import ErrorLevel, SqlglotError
from sqlglot.tokens import TokenType

# sqlglot logs its Command fallbacks; they are reported as failures instead.
logging.getLogger("sqlglot").setLevel(logging.CRITICAL)


IAM_ROLE_ARN = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")


def external_schema_problem(sql: str) -> str | None:
    """None when `sql` is CREATE EXTERNAL SCHEMA [IF NOT EXISTS] name FROM DATA CATALOG DATABASE
    'db' [REGION 'region'] IAM_ROLE {'arn' | default} [CREATE EXTERNAL DATABASE IF NOT EXISTS]."""
    try:
        tokens = sqlglot.Dialect.get_or_raise("redshift").tokenize(sql)
    except SqlglotError as err:
        return f"{type(err).__name__}: {err}"
    words = [t.text.upper() if t.token_type not in (TokenType.STRING, TokenType.IDENTIFIER) else None for t in tokens]
    at = 0

    def keywords(*expected: str) -> bool:
        nonlocal at
        if [w for w in words[at : at + len(expected)]] != list(expected):
            return False
        at += len(expected)
        return True

    def token(*types: TokenType) -> str | None:
        nonlocal at
        if at < len(tokens) and tokens[at].token_type in types:
            at += 1
            return tokens[at - 1].text
        return None

    if not keywords("CREATE", "EXTERNAL", "SCHEMA"):
        return "not CREATE EXTERNAL SCHEMA"
    keywords("IF", "NOT", "EXISTS")
    if token(TokenType.IDENTIFIER, TokenType.VAR) is None:
        return "CREATE EXTERNAL SCHEMA: no schema name"
    if not keywords("FROM", "DATA", "CATALOG", "DATABASE") or token(TokenType.STRING) is None:
        return "CREATE EXTERNAL SCHEMA: expected FROM DATA CATALOG DATABASE 'name'"
    if keywords("REGION") and token(TokenType.STRING) is None:
        return "CREATE EXTERNAL SCHEMA: expected REGION 'region'"
    if not keywords("IAM_ROLE"):
        return "CREATE EXTERNAL SCHEMA: expected IAM_ROLE"
    if not keywords("DEFAULT"):
        role = token(TokenType.STRING)
        if role is None or not IAM_ROLE_ARN.match(role):
            return f"CREATE EXTERNAL SCHEMA: IAM_ROLE {role!r} is neither default nor an IAM role ARN"
    keywords("CREATE", "EXTERNAL", "DATABASE", "IF", "NOT", "EXISTS")
    if at != len(tokens):
        return f"CREATE EXTERNAL SCHEMA: unexpected {' '.join(t.text for t in tokens[at:])!r}"
    return None


def problem(dialect: str, sql: str) -> str | None:
    try:
        trees = [t for t in sqlglot.parse(sql, read=dialect, error_level=ErrorLevel.RAISE) if t is not None]
    except SqlglotError as err:
        return re.sub(r"\x1b\[[0-9;]*m", "", f"{type(err).__name__}: {err}")
    if len(trees) != 1:
        return f"expected one statement, parsed {len(trees)}"
    if isinstance(trees[0], exp.Command):
        if dialect == "redshift" and re.match(r"(?i)\s*CREATE\s+EXTERNAL\s+SCHEMA\b", sql):
            return external_schema_problem(sql)
        return "not understood: sqlglot fell back to an opaque command"
    return None


def main() -> None:
    statements = json.load(sys.stdin)
    json.dump([problem(s["dialect"], s["sql"]) for s in statements], sys.stdout)


if __name__ == "__main__":
    main()
