"""What one running service holds: settings, knowledge, store and the FHIR transport."""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

from cds.kb.loader import Knowledge
from cds.metrics import Metrics
from cds.settings import Settings
from cds.store.call_log import NO_CALL_LOG
from cds.store.preview import PreviewStore
from cds.store.protocol import CallLog, Store
from cds.store.sql import SqlStore
from cds.store.write_behind import CallStore
from cds.trust.tokens import ClientVerifier

__all__ = ["Runtime"]


@dataclass
class Runtime:
    settings: Settings
    knowledge: Knowledge
    store: Store | None = None  # feedback and readiness
    database: SqlStore | None = None  # the same store when it is the SQL one: analytics, burden
    call_store: CallStore | None = None  # the hook route's in-memory front to the SQL store
    call_log: CallLog = NO_CALL_LOG  # what a hook call reads its history from and logs to
    fhir_transport: httpx.AsyncBaseTransport | None = None  # shared by every FHIR query
    verifier: ClientVerifier | None = None  # None when no trusted clients are configured
    metrics: Metrics = field(default_factory=Metrics)
    # The preview page's cards and their feedback, never in the production tables.
    preview_store: PreviewStore = field(default_factory=PreviewStore)
