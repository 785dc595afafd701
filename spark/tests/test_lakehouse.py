"""lakehouse.retrying: what a second try clears is tried again, anything else fails at once."""
from __future__ import annotations

import pytest

from smartcity_spark import lakehouse


def test_a_locked_catalog_is_tried_again_and_other_errors_fail_at_once(monkeypatch):
    monkeypatch.setattr(lakehouse.time, "sleep", lambda _: None)
    calls = []

    def flaky():
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("(org.apache.iceberg.jdbc.UncheckedSQLException) Unknown failure")
        return "committed"

    assert lakehouse.retrying("merging", flaky) == "committed" and len(calls) == 3

    def broken():
        calls.append(1)
        raise ValueError("[UNRESOLVED_COLUMN] speed")

    calls.clear()
    with pytest.raises(ValueError):
        lakehouse.retrying("merging", broken)
    assert len(calls) == 1

    def always_locked():
        raise RuntimeError("SQLITE_BUSY: database is locked")

    with pytest.raises(RuntimeError, match="SQLITE_BUSY"):
        lakehouse.retrying("merging", always_locked)
