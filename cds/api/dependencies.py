"""What the routes take from the request: the running service, and the path within the app."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends
from starlette.requests import Request
from starlette.types import Scope

from cds.runtime import Runtime

__all__ = ["RuntimeDep", "route_path", "runtime_of"]


def runtime_of(request: Request) -> Runtime:
    """The running service (set on the app by :func:`cds.app.create_app`)."""
    runtime: Runtime = request.app.state.runtime
    return runtime


# A route parameter ``runtime: RuntimeDep`` receives the running service.
RuntimeDep = Annotated[Runtime, Depends(runtime_of)]


def route_path(scope: Scope) -> str:
    """The request path without the app's root path (behind a proxy that mounts us below /)."""
    path: str = scope.get("path", "")
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path
