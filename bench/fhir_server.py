"""A tiny loopback FHIR server for the fallback workload: one patient, 20 ms per query.

It answers reads (``Patient/<id>``) and searches (``<Type>?patient=<id>[&code=...]``) from a
Bundle file, searched as offline requests are built (:mod:`cds.call.offline_search`), after an
artificial delay that stands in for a real server's query time. It is a bare ASGI app that
renders each distinct answer once, so that its own work (not ours) adds as little as possible
to the delay.
"""

from __future__ import annotations

import argparse
import asyncio
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import uvicorn
from starlette.types import Receive, Scope, Send

from cds.call.offline_search import answer_query

_HEADERS = [(b"content-type", b"application/fhir+json")]
_NOT_FOUND = (
    b'{"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"not-found"}]}'
)


class FhirServer:
    def __init__(self, resources: list[dict[str, Any]], delay_seconds: float) -> None:
        self.delay = delay_seconds
        self.by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for resource in resources:
            self.by_type[resource["resourceType"]].append(resource)
        self.rendered: dict[tuple[str, bytes], tuple[int, bytes]] = {}

    def answer(self, path: str, query: bytes) -> tuple[int, bytes]:
        parts = path.strip("/").split("/")
        if len(parts) == 2:
            found = [r for r in self.by_type.get(parts[0], ()) if r.get("id") == parts[1]]
            return (200, orjson.dumps(found[0])) if found else (404, _NOT_FOUND)
        matches = answer_query(f"{parts[0]}?{query.decode()}", self.by_type)
        bundle = {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(matches),
            "entry": [
                {
                    "resource": r,
                    "search": {"mode": "match" if r["resourceType"] == parts[0] else "include"},
                }
                for r in matches
            ],
        }
        return 200, orjson.dumps(bundle)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        await asyncio.sleep(self.delay)
        key = (scope["path"], scope["query_string"])
        if key not in self.rendered:
            self.rendered[key] = self.answer(*key)
        status, body = self.rendered[key]
        await send({"type": "http.response.start", "status": status, "headers": _HEADERS})
        await send({"type": "http.response.body", "body": body})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--delay-ms", type=float, default=20.0)
    args = parser.parse_args()
    bundle = orjson.loads(args.bundle.read_bytes())
    resources = [entry["resource"] for entry in bundle["entry"]]
    app = FhirServer(resources, args.delay_ms / 1000)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
