"""What every page shows (navigation, source line) and the home page's content."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cds.kb.loader import Knowledge
from cds.protocol.wire import HOOKS
from cds.settings import Settings

__all__ = ["ServiceRow", "base_context", "discovery_url", "home_context"]


@dataclass(frozen=True)
class ServiceRow:
    id: str
    hook: str
    title: str
    description: str
    rules: int


def base_context(knowledge: Knowledge, *, nav: str, title: str) -> dict[str, Any]:
    """The values ``base.html`` needs."""
    source = knowledge.source
    return {
        "nav": nav,
        "title": title,
        "source_title": source.title,
        "source_publisher": source.publisher,
        "source_date": source.current_as_of.isoformat(),
    }


def discovery_url(settings: Settings) -> str:
    return settings.public_base_url.rstrip("/") + "/cds-services"


def home_context(knowledge: Knowledge, settings: Settings) -> dict[str, Any]:
    services = [
        ServiceRow(
            id=s.spec.id,
            hook=s.spec.hook,
            title=s.spec.title,
            description=s.spec.description,
            rules=len(s.rules),
        )
        for s in knowledge.services.values()
    ]
    hooks = [hook for hook in HOOKS if any(s.hook == hook for s in services)]
    return {"services": services, "hooks": hooks, "discovery_url": discovery_url(settings)}
