"""Response classes: orjson rendering for speed."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import Response

__all__ = ["FhirJSONResponse", "JSONResponse"]


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class FhirJSONResponse(JSONResponse):
    media_type = "application/fhir+json"
