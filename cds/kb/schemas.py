"""Schemas of the knowledge and content files (``knowledge/`` and ``cards/``).

Every model forbids unknown fields, so a mistyped key fails at load with file and field named.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from cds.kb.code_systems import SYSTEM_SHORTHANDS
from cds.kb.logic import Node, _Schema
from cds.protocol.fhir_dates import parse_duration
from cds.protocol.wire import HOOKS, Indicator

__all__ = [
    "CardSpec",
    "CardTemplate",
    "Case",
    "CaseExpectation",
    "Definition",
    "EducationPage",
    "Finding",
    "FindingRef",
    "OverrideReasonSpec",
    "Review",
    "Rule",
    "RuleSource",
    "ServiceSpec",
    "SourceDocument",
    "SuggestionSpec",
    "ValueSetCode",
    "ValueSetFamily",
    "ValueSetFile",
]

_ID = re.compile(r"^[a-z0-9]+(?:-[a-z0-9]+)*$")


def _kebab(value: str) -> str:
    if not _ID.match(value):
        raise ValueError(f"ids are kebab-case (a-z, 0-9, '-'): {value!r}")
    return value


# --- value sets ------------------------------------------------------------------------------


class ValueSetCode(_Schema):
    system: str
    code: str
    display: str
    verified: Literal["V", "V3", "U"] = Field(
        description="V verified, V3 third-party verified, U unverified (clinical-codes.md §0)"
    )
    note: str | None = None

    @field_validator("system")
    @classmethod
    def _expand(cls, value: str) -> str:
        return SYSTEM_SHORTHANDS.get(value, value)

    @field_validator("code", mode="before")
    @classmethod
    def _as_text(cls, value: Any) -> Any:
        return str(value) if isinstance(value, int) else value


class ValueSetFamily(_Schema):
    """Every ICD-10-CM code under ``prefix`` (``C50`` covers C50.011 to C50.929)."""

    system: Literal["icd10cm", "http://hl7.org/fhir/sid/icd-10-cm"]
    prefix: str = Field(min_length=3)
    display: str
    verified: Literal["V", "V3", "U"]

    @property
    def system_uri(self) -> str:
        return SYSTEM_SHORTHANDS.get(self.system, self.system)


class ValueSetFile(_Schema):
    id: str
    title: str
    description: str
    codes: tuple[ValueSetCode, ...] = ()
    families: tuple[ValueSetFamily, ...] = ()
    include: tuple[str, ...] = ()
    descendants_of: tuple[ValueSetCode, ...] = Field(
        (),
        description="SNOMED CT concepts held with their descendants "
        "(knowledge/terminology/snomed-descendants.yaml, or a site's import)",
    )
    absence_words: tuple[str, ...] = Field(
        (),
        description="words that name a member in free text, as the code displays do: they may "
        "hold back a claim that the set is absent when an entry has no code the service can "
        "read, and never make a fact hold (docs/record-reading.md)",
    )

    _check_id = field_validator("id")(classmethod(lambda cls, v: _kebab(v)))

    @model_validator(mode="after")
    def _not_empty(self) -> ValueSetFile:
        if not (self.codes or self.families or self.include or self.descendants_of):
            raise ValueError("a value set needs codes, families, include or descendants_of")
        return self


# --- source document -------------------------------------------------------------------------


class SourceSection(_Schema):
    heading: str
    clinical: bool = True
    why_not: str | None = Field(None, description="Why a non-clinical section has no content")


class SourceDocument(_Schema):
    id: str
    title: str
    publisher: str
    current_as_of: date
    sections: tuple[SourceSection, ...]


# --- rules -----------------------------------------------------------------------------------


class RuleSource(_Schema):
    document: str
    section: str
    summary: str = Field(min_length=10, max_length=300)
    beyond_source: bool = Field(
        False, description="True when the rule goes beyond what the document says"
    )


class CardSpec(_Schema):
    template: str
    indicator: Indicator
    education: tuple[str, ...] = Field((), description="Education page slugs to link")


class SuggestionSpec(_Schema):
    id: str
    label: str = Field(min_length=1, max_length=120)
    description: str = Field(min_length=1)
    recommended: bool = False
    resource: dict[str, Any]

    _check_id = field_validator("id")(classmethod(lambda cls, v: _kebab(v)))


class Review(_Schema):
    reviewed_by: str | None = None
    reviewed_on: date | None = None
    version: str | None = Field(None, description="The rule version the reviewer signed off")
    content_hash: str | None = Field(
        None, description="Hash of the logic and card content the reviewer signed off"
    )

    @property
    def state(self) -> str:
        if self.reviewed_by and self.reviewed_on:
            return f"reviewed by {self.reviewed_by} on {self.reviewed_on.isoformat()}"
        return "unreviewed"


class FindingRef(_Schema):
    """Membership of a finding: rules of one finding that fire together give one merged card."""

    id: str
    item: str = Field(min_length=3, max_length=80, description="What this rule adds to the card")

    _check_id = field_validator("id")(classmethod(lambda cls, v: _kebab(v)))


class Finding(_Schema):
    """A finding several rules report (``knowledge/findings.yaml``): one card lists them all."""

    id: str
    title: str = Field(min_length=5, max_length=120)
    template: str

    _check_id = field_validator("id")(classmethod(lambda cls, v: _kebab(v)))


class Logic(_Schema):
    inclusion: tuple[Node, ...] = Field(min_length=1)
    exclusion: tuple[Node, ...] = ()


class Rule(_Schema):
    id: str
    version: str = Field(pattern=r"^\d+\.\d+\.\d+$")
    status: Literal["draft", "active", "retired"]
    title: str = Field(min_length=5, max_length=120)
    hooks: tuple[str, ...] = Field(min_length=1)
    source: RuleSource
    rationale: str = Field(min_length=20)
    logic: Logic
    card: CardSpec
    suggestions: tuple[SuggestionSpec, ...] = ()
    override_reasons: tuple[str, ...] = ()
    known_gaps: tuple[str, ...] = ()
    # One card per finding (see cds.call.findings): rules whose cards this one replaces when both
    # fire, the finding whose merged card it joins, rules reviewed as a different finding.
    supersedes: tuple[str, ...] = ()
    finding: FindingRef | None = None
    distinct_from: tuple[str, ...] = ()
    # silent: evaluated and logged, never returned (a site's trial run before go-live).
    mode: Literal["shown", "silent"] = "shown"
    # How long a card shown to a patient is not shown again with the same facts (ISO 8601
    # duration); default by indicator (cds.call.repeat_limits). P0D: no limit.
    repeat_interval: str | None = None
    # Definitions whose facts also make the card "new": when the record gains one (a new
    # metastasis, a recurrence), the card shows again before its interval ends.
    repeat_resets_on: tuple[str, ...] = ()
    review: Review = Review()

    _check_id = field_validator("id")(classmethod(lambda cls, v: _kebab(v)))

    @field_validator("repeat_interval")
    @classmethod
    def _interval(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    @field_validator("hooks")
    @classmethod
    def _known_hooks(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [h for h in value if h not in HOOKS]
        if unknown:
            raise ValueError(f"unknown hooks {unknown}; known: {', '.join(HOOKS)}")
        return value


class Definition(_Schema):
    description: str
    logic: Node


class ServiceSpec(_Schema):
    id: str
    hook: str
    title: str
    description: str
    rules: tuple[str, ...]

    _check_id = field_validator("id")(classmethod(lambda cls, v: _kebab(v)))


# --- cases -----------------------------------------------------------------------------------


class CaseExpectation(_Schema):
    fires: bool | None = None
    indicator: Indicator | None = None
    status: int = 200
    fact_ids: tuple[str, ...] = Field((), description="Resource ids the explanation must cite")

    @model_validator(mode="after")
    def _meaningful(self) -> CaseExpectation:
        if self.status == 200 and self.fires is None:
            raise ValueError("a 200 case says whether the rule fires")
        return self


class Case(_Schema):
    name: str
    description: str
    hook: str | None = None
    now: date | None = None
    fixtures: tuple[str, ...] = ()
    resources: tuple[dict[str, Any], ...] = ()
    draft_orders: tuple[dict[str, Any], ...] = ()
    selections: tuple[str, ...] = Field(
        (), description="order-select: the selected drafts ('Type/id'); default all of them"
    )
    null_prefetch: tuple[str, ...] = ()
    omit_prefetch: tuple[str, ...] = ()
    expect: CaseExpectation

    @field_validator("name")
    @classmethod
    def _named_by_kind(cls, value: str) -> str:
        _kebab(value)
        if not value.startswith(("in-", "out-", "boundary-", "missing-", "null-", "exclusion-")):
            raise ValueError(
                "case names start with in-, out-, exclusion-, boundary-, missing- or null-"
            )
        return value

    @model_validator(mode="after")
    def _selections_are_drafts(self) -> Case:
        drafts = {f"{d.get('resourceType')}/{d.get('id')}" for d in self.draft_orders}
        unknown = [s for s in self.selections if s not in drafts]
        if unknown:
            raise ValueError(f"selections {unknown} name no draft order of this case")
        return self


# --- content (cards/) ------------------------------------------------------------------------


class CardTemplate(_Schema):
    id: str
    audience: Literal["clinician", "patient"]
    summary: str = Field(min_length=5, max_length=139)
    detail: str = Field(min_length=10)

    _check_id = field_validator("id")(classmethod(lambda cls, v: _kebab(v)))


class OverrideReasonSpec(_Schema):
    code: str
    display: str
    suppresses: bool = Field(
        False, description="An override with this reason hides the rule's card for a while"
    )


class EducationPage(_Schema):
    slug: str
    title: str
    summary: str
    sections: tuple[str, ...] = Field(min_length=1)
    body: str
    beyond_source: dict[str, str] = Field(
        default_factory=dict,
        description="Headings of this page's sections that go beyond the source document, each "
        "with the guideline used (name and year)",
    )
