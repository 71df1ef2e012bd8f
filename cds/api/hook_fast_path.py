"""The hook call, served without FastAPI's per-request machinery.

``POST /cds-services/{id}`` is the route an EHR waits on, and FastAPI's middleware stack,
routing, dependency solving and endpoint wrapping cost about as much per call as our rules do.
:class:`ServiceApp` sends exactly that route, before any of that, to a short chain of its own
(CORS when configured, the last-resort error guard, metrics, then :class:`HookCallEndpoint`)
and everything else to FastAPI as usual. The endpoint calls the same two functions FastAPI
would (the client authentication dependency and the route's handler). The FastAPI route stays
declared, so the OpenAPI document is unchanged. Errors become responses through the function
:mod:`cds.app` hands in, the same one its exception handler uses.
"""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from cds.api.client_auth import authenticate_client
from cds.api.dependencies import route_path, runtime_of
from cds.api.hooks_routes import call_service
from cds.errors import RequestError

__all__ = ["HookCallEndpoint", "ServiceApp", "hook_call_service_id"]

_PREFIX = "/cds-services/"


def hook_call_service_id(scope: Scope) -> str | None:
    """The service id when ``scope`` is a hook call (``POST /cds-services/{id}``), else None."""
    if scope["type"] != "http" or scope["method"] != "POST":
        return None
    path = route_path(scope)
    if not path.startswith(_PREFIX):
        return None
    service_id = path[len(_PREFIX) :]
    if not service_id or "/" in service_id:
        return None
    return service_id


class HookCallEndpoint:
    """An ASGI app for hook calls only: authenticate the client, run the service, answer."""

    def __init__(self, on_error: Callable[[RequestError], Response]) -> None:
        self.on_error = on_error

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        service_id = hook_call_service_id(scope)
        assert service_id is not None  # ServiceApp sends nothing else here
        request = Request(scope, receive)
        response: Response
        try:
            runtime = runtime_of(request)
            await authenticate_client(request, runtime)
            response = await call_service(service_id, request, runtime)
        except RequestError as exc:
            response = self.on_error(exc)
        await response(scope, receive, send)


class ServiceApp(FastAPI):
    """FastAPI, with hook calls taken off before its middleware stack (see the module doc)."""

    hook_calls: ASGIApp | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.hook_calls is not None and hook_call_service_id(scope) is not None:
            if self.root_path:
                scope["root_path"] = self.root_path
            scope["app"] = self  # what FastAPI sets, and what request.app reads
            await self.hook_calls(scope, receive, send)
            return
        await super().__call__(scope, receive, send)
