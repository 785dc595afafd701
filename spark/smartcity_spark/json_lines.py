"""The Python side of a long-lived child that Node talks to in JSON lines
(activities/json-lines-child.ts): one request per line on stdin, one answer per line on stdout,
matched by the request's id. A failure is an answer ({"error": …}); the child serves on."""
from __future__ import annotations

import json
import sys
import traceback
from typing import Any, Callable


def serve(handle: Callable[[dict[str, Any]], dict[str, Any]], trace: bool = False) -> None:
    for line in sys.stdin:
        if not line.strip():
            continue
        request_id = None
        try:
            request = json.loads(line)
            request_id = request.get("id")
            answer = handle(request)
        except Exception as err:  # noqa: BLE001 - every failure is an answer
            answer = {"error": f"{type(err).__name__}: {err}" + (f"\n{traceback.format_exc()}" if trace else "")}
        sys.stdout.write(json.dumps({"id": request_id, **answer}) + "\n")
        sys.stdout.flush()
