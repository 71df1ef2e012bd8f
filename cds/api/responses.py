"""Response classes: orjson rendering for speed, and files shipped in the package."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import orjson
from fastapi import HTTPException
from fastapi.responses import JSONResponse as _JSONResponse
from fastapi.responses import Response

__all__ = ["FhirJSONResponse", "JSONResponse", "packaged_file"]


class JSONResponse(_JSONResponse):
    """A JSON answer rendered by orjson (a JSONResponse, so OpenAPI shows its model)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class FhirJSONResponse(JSONResponse):
    media_type = "application/fhir+json"


async def packaged_file(
    folder: Path, name: str, media_types: dict[str, str], *, max_age: int, what: str
) -> Response:
    """One of the files ``media_types`` lists (by name) from ``folder``, else a 404 naming
    ``what`` it is: only listed names are served, so no path reaches another file."""
    media_type = media_types.get(name)
    if media_type is None:
        raise HTTPException(status_code=404, detail=f"no {what} {name[:80]!r}")
    content = await asyncio.to_thread((folder / name).read_bytes)
    return Response(
        content,
        media_type=media_type,
        headers={
            "Cache-Control": f"public, max-age={max_age}",
            "X-Content-Type-Options": "nosniff",
        },
    )
