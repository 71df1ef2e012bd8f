"""A copy of the shipped knowledge with a rule-less service for every hook it does not serve.

The protocol layer (parsing, draft orders, prefetch, errors) must work on all five hooks even
while the knowledge only declares services for some of them; these test services answer
``{"cards": []}`` and need only the patient.
"""

from __future__ import annotations

import dataclasses

from cds.kb.loader import Knowledge, Service
from cds.kb.prefetch_plan import plan_prefetch
from cds.kb.schemas import ServiceSpec
from cds.protocol.wire import HOOKS

__all__ = ["protocol_service_id", "service_for", "with_every_hook"]


def with_every_hook(knowledge: Knowledge, *, always: bool = False) -> Knowledge:
    """Add ``test-<hook>`` services: for hooks without a service, or for all with ``always``."""
    services = dict(knowledge.services)
    for hook in HOOKS:
        if knowledge.services_for(hook) and not always:
            continue
        spec = ServiceSpec(
            id=protocol_service_id(hook),
            hook=hook,
            title=f"Test service for {hook}",
            description="Answers no cards; exercises the protocol layer.",
            rules=(),
        )
        plan = plan_prefetch(hook, (), knowledge.definitions, knowledge.valuesets)
        services[spec.id] = Service(spec=spec, rules=(), prefetch=plan)
    return dataclasses.replace(knowledge, services=services)


def service_for(knowledge: Knowledge, hook: str) -> Service:
    """The first service on ``hook`` (the shipped one when there is one)."""
    found = knowledge.services_for(hook)
    assert found, f"no service for {hook}"
    return found[0]


def protocol_service_id(hook: str) -> str:
    """The id of the rule-less test service on ``hook``."""
    return f"test-{hook}"
