"""CDS Hooks 2.0.1 wire models.

Incoming requests are parsed tolerantly (unknown fields and ``extension`` are kept, EHR quirks
pass); what we emit is strict: every spec object has a model, and :func:`dump_response` drops
``None`` and empty optional arrays because the spec forbids JSON ``null`` and empty elements.
"""

from __future__ import annotations

import re
import uuid as uuid_module
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "HOOKS",
    "INDICATOR_RANK",
    "Action",
    "Card",
    "CdsResponse",
    "Coding",
    "DiscoveryResponse",
    "FeedbackItem",
    "FeedbackRequest",
    "FhirAuthorization",
    "HookRequest",
    "Link",
    "OverrideReason",
    "ReceivedCoding",
    "ServiceDescriptor",
    "Source",
    "Suggestion",
    "dump_model",
]

HOOKS: tuple[str, ...] = (
    "patient-view",
    "order-select",
    "order-sign",
    "encounter-start",
    "encounter-discharge",
)
Indicator = Literal["info", "warning", "critical"]
# Urgency order: cards are shown critical first, then warning, then info.
INDICATOR_RANK = {"critical": 0, "warning": 1, "info": 2}


def new_uuid() -> str:
    return str(uuid_module.uuid4())


class _Strict(BaseModel):
    """Only the spec's fields; ``extension`` (reserved by the spec on every object) is allowed."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=False)

    extension: dict[str, Any] | None = None


# --- what we emit ---------------------------------------------------------------------------


class Coding(_Strict):
    system: str
    code: str
    display: str | None = None


class Source(_Strict):
    label: str = Field(min_length=1)
    url: str | None = None
    icon: str | None = None
    topic: Coding | None = None


class Action(_Strict):
    type: Literal["create", "update", "delete"]
    description: str = Field(min_length=1)
    resource: dict[str, Any] | None = None
    resource_id: str | None = Field(None, alias="resourceId")

    @model_validator(mode="after")
    def _resource_for_create_and_update(self) -> Action:
        if self.type in ("create", "update") and not self.resource:
            raise ValueError(f"a {self.type} action needs the resource")
        return self


class Suggestion(_Strict):
    label: str = Field(min_length=1)
    uuid: str = Field(default_factory=new_uuid)
    is_recommended: bool | None = Field(None, alias="isRecommended")
    actions: list[Action] = Field(default_factory=list)


class Link(_Strict):
    label: str = Field(min_length=1)
    url: str = Field(min_length=1)
    type: Literal["absolute", "smart"] = "absolute"
    app_context: str | None = Field(None, alias="appContext")
    autolaunchable: bool | None = None

    @model_validator(mode="after")
    def _app_context_only_for_smart(self) -> Link:
        if self.app_context is not None and self.type != "smart":
            raise ValueError("appContext is only allowed on smart links")
        return self


class OverrideReason(Coding):
    display: str = Field(min_length=1)


class Card(_Strict):
    uuid: str = Field(default_factory=new_uuid)
    summary: str = Field(min_length=1, max_length=139)
    detail: str | None = None
    indicator: Indicator
    source: Source
    suggestions: list[Suggestion] = Field(default_factory=list)
    selection_behavior: Literal["at-most-one", "any"] | None = Field(
        None, alias="selectionBehavior"
    )
    override_reasons: list[OverrideReason] = Field(default_factory=list, alias="overrideReasons")
    links: list[Link] = Field(default_factory=list)

    @model_validator(mode="after")
    def _selection_behavior_with_suggestions(self) -> Card:
        if self.suggestions and self.selection_behavior is None:
            raise ValueError("selectionBehavior is required when suggestions are present")
        if not self.suggestions:
            self.selection_behavior = None  # meaningless without suggestions
        return self


class CdsResponse(_Strict):
    cards: list[Card] = Field(default_factory=list)
    system_actions: list[Action] = Field(default_factory=list, alias="systemActions")


class ServiceDescriptor(_Strict):
    hook: str
    id: str
    title: str | None = None
    description: str
    prefetch: dict[str, str] = Field(default_factory=dict)
    version: str | None = None
    usage_requirements: str | None = Field(None, alias="usageRequirements")


class DiscoveryResponse(_Strict):
    services: list[ServiceDescriptor]


def dump_model(model: BaseModel) -> dict[str, Any]:
    """Serialise for the wire: camelCase, no nulls, no empty optional arrays (``cards`` stays)."""
    data = model.model_dump(by_alias=True, exclude_none=True)
    pruned: dict[str, Any] = _prune(data, keep_empty=("cards", "services"))
    return pruned


def _prune(value: Any, keep_empty: tuple[str, ...] = ()) -> Any:
    # Called once per container, never per scalar: responses are mostly scalars.
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            if item is None:
                continue
            if isinstance(item, dict | list):
                item = _prune(item)
                if not item and key not in keep_empty:
                    continue
            out[key] = item
        return out
    if isinstance(value, list):
        return [
            _prune(item) if isinstance(item, dict | list) else item
            for item in value
            if item is not None
        ]
    return value


# --- what we receive ------------------------------------------------------------------------


class _Tolerant(BaseModel):
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class FhirAuthorization(_Tolerant):
    access_token: str = Field(min_length=1)
    token_type: str = "Bearer"
    expires_in: int | None = None
    scope: str | None = None
    subject: str | None = None
    patient: str | None = None

    def __repr__(self) -> str:  # never print the token
        return "FhirAuthorization(access_token=<redacted>)"

    __str__ = __repr__


class HookRequest(_Tolerant):
    hook: str = Field(min_length=1)
    hook_instance: str = Field(alias="hookInstance", min_length=1)
    fhir_server: str | None = Field(None, alias="fhirServer")
    fhir_authorization: FhirAuthorization | None = Field(None, alias="fhirAuthorization")
    context: dict[str, Any]
    prefetch: dict[str, Any] | None = None
    extension: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _authorization_needs_server(self) -> HookRequest:
        if self.fhir_authorization is not None and not self.fhir_server:
            raise ValueError("fhirServer is required when fhirAuthorization is present")
        return self

    def __repr__(self) -> str:
        return f"HookRequest(hook={self.hook!r}, hookInstance={self.hook_instance!r})"


class ReceivedCoding(_Tolerant):
    """A Coding sent to us: ``version``, ``userSelected`` or ``extension`` may come along."""

    system: str = Field(min_length=1)
    code: str = Field(min_length=1)
    display: str | None = None


# A date, a time and a zone are all required (Python alone would also take a bare date).
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})")


class OverrideReasonFeedback(_Tolerant):
    reason: ReceivedCoding | None = None
    user_comment: str | None = Field(None, alias="userComment", max_length=4000)


class AcceptedSuggestion(_Tolerant):
    id: str = Field(min_length=1)


class FeedbackItem(_Tolerant):
    card: str = Field(min_length=1, max_length=200)
    outcome: Literal["accepted", "overridden"]
    accepted_suggestions: list[AcceptedSuggestion] = Field(
        default_factory=list, alias="acceptedSuggestions"
    )
    override_reason: OverrideReasonFeedback | None = Field(None, alias="overrideReason")
    outcome_timestamp: str = Field(alias="outcomeTimestamp", min_length=1)

    @field_validator("outcome_timestamp")
    @classmethod
    def _rfc3339(cls, value: str) -> str:
        match = _RFC3339.fullmatch(value)
        try:
            if match is None:
                raise ValueError(value)
            # Stored in UTC: a time that has no UTC equivalent (0001-01-01 at +01:00) is refused.
            datetime.fromisoformat(value.upper().replace("Z", "+00:00")).astimezone(UTC)
        except (ValueError, OverflowError):
            raise ValueError("outcomeTimestamp must be an RFC 3339 date-time") from None
        return value

    @model_validator(mode="after")
    def _consistent(self) -> FeedbackItem:
        if self.outcome == "accepted" and self.override_reason is not None:
            raise ValueError("an accepted card has no overrideReason")
        if self.outcome == "overridden" and self.accepted_suggestions:
            raise ValueError("an overridden card has no acceptedSuggestions")
        return self


class FeedbackRequest(_Tolerant):
    feedback: list[FeedbackItem] = Field(min_length=1, max_length=1000)
