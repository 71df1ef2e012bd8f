"""Read a JSON request body safely: content type, size cap, orjson parsing."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi import Request

from cds.errors import BadRequest, PayloadTooLarge, UnsupportedMedia

__all__ = ["read_json"]

_JSON_TYPES = ("application/json", "application/fhir+json")


async def read_json(request: Request, max_bytes: int) -> Any:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type not in _JSON_TYPES:
        raise UnsupportedMedia(
            "send the request body as application/json", expression=["Content-Type"]
        )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes:
        raise PayloadTooLarge(f"request body is larger than {max_bytes} bytes")
    chunks = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > max_bytes:
            raise PayloadTooLarge(f"request body is larger than {max_bytes} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body:
        raise BadRequest("the request body is empty")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(
            f"the request body is not valid JSON ({exc.msg} at position {exc.pos})"
        ) from exc
