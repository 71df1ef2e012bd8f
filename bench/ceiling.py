"""The ceiling: a FastAPI app on uvicorn that parses the request body and returns fixed cards.

It does what every CDS Hooks endpoint on this web stack must do at least (receive the body,
parse the JSON with FastAPI's own ``payload: dict`` handling, send a response) and nothing more;
our service is measured against it. The response is the bytes our service sent for the same
request, so both put the same amount on the wire.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI, Response


def create_ceiling(response_body: bytes) -> FastAPI:
    app = FastAPI()

    @app.post("/cds-services/{service_id}")
    async def call(service_id: str, payload: dict[str, Any]) -> Response:
        del service_id, payload
        return Response(response_body, media_type="application/json")

    @app.get("/cds-services")
    async def discovery() -> dict[str, Any]:
        return {"services": []}

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--response", type=Path, required=True, help="file with the fixed body")
    args = parser.parse_args()
    app = create_ceiling(args.response.read_bytes())
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
