"""The FastAPI dependency that authenticates CDS clients on every CDS Hooks route.

A request without ``Authorization`` passes unless ``CDS_REQUIRE_JWT`` is on; a request with one
is always verified (a bad token is refused even when tokens are optional). The ``aud`` a token
must carry is the URL of the endpoint called, built from ``CDS_PUBLIC_BASE_URL`` and the route
path, never from the Host header. Feedback also accepts the service's own URL as ``aud``.
"""

from __future__ import annotations

from fastapi import Request

from cds.api.dependencies import RuntimeDep, route_path
from cds.errors import Unauthorized
from cds.logs import logger
from cds.trust.tokens import bearer_token

__all__ = ["audiences_for", "authenticate_client"]


def audiences_for(base_url: str, route_path: str) -> list[str]:
    url = base_url.rstrip("/") + route_path
    if route_path.endswith("/feedback"):
        return [url, url.removesuffix("/feedback")]
    return [url]


async def authenticate_client(request: Request, runtime: RuntimeDep) -> None:
    try:
        token = bearer_token(request.headers.get("authorization"))
        if token is None:
            if runtime.settings.require_jwt:
                raise Unauthorized("missing_token")
            return
        if runtime.verifier is None:
            raise Unauthorized("no_trusted_clients")
        request.state.client = await runtime.verifier.verify(
            token, audiences_for(runtime.settings.public_base_url, route_path(request.scope))
        )
    except Unauthorized as exc:
        runtime.metrics.jwt_rejections.labels(exc.reason).inc()
        logger.info("client refused", extra={"fields": {"reason": exc.reason, "status": 401}})
        raise
