"""A copy of the shipped knowledge with a rule-less service for every hook it does not serve.

The protocol layer (parsing, draft orders, prefetch, errors) must work on all five hooks even
while the knowledge only declares services for some of them; these test services answer
``{"cards": []}`` and need only the patient.
"""

from __future__ import annotations

import dataclasses

from cds.hooks import HOOKS
from cds.knowledge import Knowledge, Service
from cds.prefetch_plan import plan_prefetch
from cds.rules import ServiceSpec

__all__ = ["service_for", "with_every_hook"]


def with_every_hook(knowledge: Knowledge) -> Knowledge:
    services = dict(knowledge.services)
    for hook in HOOKS:
        if knowledge.services_for(hook):
            continue
        spec = ServiceSpec(
            id=f"test-{hook}",
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
