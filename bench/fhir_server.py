"""A tiny loopback FHIR server for the fallback workload: one patient, 20 ms per query.

It answers reads (``Patient/<id>``) and searches (``<Type>?patient=<id>[&code=...]``) from a
Bundle file, after an artificial delay that stands in for a real server's query time.
"""

from __future__ import annotations

import argparse
import asyncio
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

_FHIR_JSON = "application/fhir+json"


def _codes_of(resource: dict[str, Any]) -> set[str]:
    concept = resource.get("code") or resource.get("medicationCodeableConcept") or {}
    return {
        f"{coding.get('system')}|{coding.get('code')}"
        for coding in concept.get("coding") or ()
        if isinstance(coding, dict)
    }


def create_fhir_server(resources: list[dict[str, Any]], delay_seconds: float) -> Starlette:
    by_type: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for resource in resources:
        by_type[resource["resourceType"]].append(resource)

    async def search_or_read(request: Request) -> Response:
        await asyncio.sleep(delay_seconds)
        rtype = request.path_params["rtype"]
        rid = request.path_params.get("rid")
        if rid is not None:
            found = [r for r in by_type.get(rtype, ()) if r.get("id") == rid]
            if not found:
                return Response(b'{"resourceType":"OperationOutcome"}', 404, media_type=_FHIR_JSON)
            return Response(orjson.dumps(found[0]), media_type=_FHIR_JSON)
        matches = by_type.get(rtype, [])
        wanted = request.query_params.get("code")
        if wanted:
            codes = set(wanted.split(","))
            matches = [r for r in matches if _codes_of(r) & codes]
        bundle = {
            "resourceType": "Bundle",
            "type": "searchset",
            "total": len(matches),
            "entry": [{"resource": r, "search": {"mode": "match"}} for r in matches],
        }
        return Response(orjson.dumps(bundle), media_type=_FHIR_JSON)

    return Starlette(
        routes=[
            Route("/{rtype}", search_or_read),
            Route("/{rtype}/{rid}", search_or_read),
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--delay-ms", type=float, default=20.0)
    args = parser.parse_args()
    bundle = orjson.loads(args.bundle.read_bytes())
    resources = [entry["resource"] for entry in bundle["entry"]]
    app = create_fhir_server(resources, args.delay_ms / 1000)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
