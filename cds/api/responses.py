"""Response classes: orjson rendering for speed."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import JSONResponse as _JSONResponse

__all__ = ["FhirJSONResponse", "JSONResponse"]


class JSONResponse(_JSONResponse):
    """A JSON answer rendered by orjson (a JSONResponse, so OpenAPI shows its model)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class FhirJSONResponse(JSONResponse):
    media_type = "application/fhir+json"
