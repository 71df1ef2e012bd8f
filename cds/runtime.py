"""What one running service holds: settings, knowledge, store and the shared HTTP client."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

from cds.knowledge import Knowledge
from cds.settings import Settings
from cds.store import Store

__all__ = ["Runtime"]


@dataclass
class Runtime:
    settings: Settings
    knowledge: Knowledge
    store: Store | None = None
    http: httpx.AsyncClient | None = None
