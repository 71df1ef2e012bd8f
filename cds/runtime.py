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
from cds.trust.tokens import ClientVerifier

__all__ = ["Runtime"]


@dataclass
class Runtime:
    settings: Settings
    knowledge: Knowledge
    store: Store | None = None  # feedback and readiness (the SQL store's write-behind front)
    database: SqlStore | None = None  # the SQL store itself, if that is the store: analytics
    call_log: CallLog = NO_CALL_LOG  # what a hook call reads its history from and logs to
    fhir_transport: httpx.AsyncBaseTransport | None = None  # shared by every FHIR query
    verifier: ClientVerifier | None = None  # None when no trusted clients are configured
    metrics: Metrics = field(default_factory=Metrics)
    # The preview page's cards and their feedback, never in the production tables.
    preview_store: PreviewStore = field(default_factory=PreviewStore)
