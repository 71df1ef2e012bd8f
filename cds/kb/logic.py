"""The logic vocabulary of rules: schema-checked data, never code.

A rule's ``inclusion`` is a list of nodes that must all hold; its ``exclusion`` a list of
nodes of which none may hold. A node is exactly one of:

- ``all: [nodes]`` / ``any: [nodes]`` / ``not: node``
- ``ref: <definition>``: a named node from ``knowledge/definitions.yaml``
- a fact about the record: ``condition``, ``observation``, ``medication``, ``procedure``,
  ``document``, ``research-subject``, ``service-request``, ``draft-order``, ``imaging``
  (a DiagnosticReport or an ImagingStudy) (a :class:`FactQuery`)
- ``patient``: age, sex, deceased (a :class:`PatientQuery`)
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cds.protocol.fhir_dates import parse_duration

__all__ = [
    "Anchor",
    "ComponentTest",
    "CountTest",
    "FactQuery",
    "Node",
    "PatientQuery",
    "TrendTest",
    "ValueTest",
]

FACT_KINDS = (
    "condition",
    "observation",
    "medication",
    "procedure",
    "document",
    "research-subject",
    "service-request",
    "draft-order",
    "imaging",
)


# The value set an albumin-corrected calcium test reads its albumin from.
ALBUMIN_VALUESET = "albumin"


class _Schema(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


def _duration(value: str | None) -> str | None:
    if value is not None:
        parse_duration(value)
    return value


class Anchor(_Schema):
    """A date taken from another fact: its first or last occurrence, plus an optional offset."""

    first: str | None = None
    last: str | None = None
    offset: str | None = None

    _check_offset = field_validator("offset")(classmethod(lambda cls, v: _duration(v)))

    @model_validator(mode="after")
    def _one_of(self) -> Anchor:
        if (self.first is None) == (self.last is None):
            raise ValueError("an anchor names exactly one of 'first' or 'last'")
        return self

    @property
    def name(self) -> str:
        return self.first or self.last or ""


class ValueTest(_Schema):
    """A test on ``Observation.value[x]``: a coded answer in a value set, or a number."""

    valueset: str | None = None
    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None
    unit: str | None = Field(
        None, description="UCUM unit of the threshold; other units are converted (cds.engine.units)"
    )
    albumin_corrected: bool = Field(
        False,
        description="Total calcium corrected for a same-time serum albumin before comparing",
    )

    @model_validator(mode="after")
    def _something(self) -> ValueTest:
        numeric = any(v is not None for v in (self.gt, self.gte, self.lt, self.lte))
        if self.valueset is None and not numeric:
            raise ValueError("a value test needs a valueset or a threshold (gt/gte/lt/lte)")
        if self.valueset is not None and numeric:
            raise ValueError("a value test is either coded (valueset) or numeric, not both")
        if self.albumin_corrected and self.unit is None:
            raise ValueError("an albumin-corrected value test needs a unit")
        return self


class ComponentTest(_Schema):
    """An ``Observation.component`` whose code is in ``valueset`` and whose value passes."""

    valueset: str
    value: ValueTest | None = None


class CountTest(_Schema):
    at_least: int = Field(ge=1)


class TrendTest(_Schema):
    """The latest value is at least ``decrease_percent`` below the highest within ``within``."""

    decrease_percent: float = Field(gt=0, le=100)
    within: str

    _check_within = field_validator("within")(classmethod(lambda cls, v: _duration(v)))


class FactQuery(_Schema):
    """Resources of one kind, matched by value set and narrowed by filters."""

    valueset: str | None = None
    label: str | None = Field(None, description="How explanations name this fact")
    status: Literal["active", "current", "any"] | None = None
    within: str | None = None
    older_than: str | None = None
    after: Anchor | None = None
    before: Anchor | None = None
    latest: bool = False
    value: ValueTest | None = None
    interpretation: tuple[str, ...] | None = None
    component: ComponentTest | None = None
    components: tuple[ComponentTest, ...] = Field(
        (), description="Components that must all be present, on the same observation"
    )
    count: CountTest | None = None
    trend: TrendTest | None = None
    body_site: str | None = Field(
        None, description="Value set that a code of the resource's bodySite must be in (side, site)"
    )

    _check_durations = field_validator("within", "older_than")(
        classmethod(lambda cls, v: _duration(v))
    )

    @model_validator(mode="after")
    def _latest_is_one(self) -> FactQuery:
        if self.latest and (self.count is not None or self.trend is not None):
            raise ValueError("'latest' keeps one result, so it cannot combine with count or trend")
        return self

    def component_tests(self) -> tuple[ComponentTest, ...]:
        """``component`` and ``components`` together: all must hold on one observation."""
        return ((self.component,) if self.component else ()) + self.components

    def valuesets(self) -> list[str]:
        """Every value set the query reads: its own, its value's and its components'."""
        found = [self.valueset, self.value.valueset if self.value else None, self.body_site]
        if self.value is not None and self.value.albumin_corrected:
            found.append(ALBUMIN_VALUESET)
        for test in self.component_tests():
            found += [test.valueset, test.value.valueset if test.value else None]
        return [vs for vs in found if vs is not None]


class PatientQuery(_Schema):
    age_at_least: int | None = Field(None, ge=0)
    age_below: int | None = Field(None, ge=0)
    sex: tuple[Literal["female", "male", "other", "unknown"], ...] | None = None
    deceased: bool | None = None


class Node(_Schema):
    """One node of rule logic; exactly one field is set (see the module docstring)."""

    all_: tuple[Node, ...] | None = Field(None, alias="all")
    any_: tuple[Node, ...] | None = Field(None, alias="any")
    not_: Node | None = Field(None, alias="not")
    ref: str | None = None
    condition: FactQuery | None = None
    observation: FactQuery | None = None
    medication: FactQuery | None = None
    procedure: FactQuery | None = None
    document: FactQuery | None = None
    research_subject: FactQuery | None = Field(None, alias="research-subject")
    service_request: FactQuery | None = Field(None, alias="service-request")
    draft_order: FactQuery | None = Field(None, alias="draft-order")
    imaging: FactQuery | None = None
    patient: PatientQuery | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Node:
        set_fields = [name for name in self.model_fields_set if getattr(self, name) is not None]
        if len(set_fields) != 1:
            raise ValueError(
                "a logic node has exactly one of all, any, not, ref, patient or a fact kind "
                f"({', '.join(FACT_KINDS)}); got {sorted(set_fields) or 'none'}"
            )
        return self

    def fact(self) -> tuple[str, FactQuery] | None:
        for kind in FACT_KINDS:
            query = getattr(self, kind.replace("-", "_"))
            if query is not None:
                return kind, query
        return None

    def children(self) -> tuple[Node, ...]:
        if self.all_ is not None:
            return self.all_
        if self.any_ is not None:
            return self.any_
        if self.not_ is not None:
            return (self.not_,)
        return ()

    def describe(self) -> dict[str, Any]:
        """The node as plain data in its YAML spelling (for pages and exports)."""
        return self.model_dump(by_alias=True, exclude_none=True, exclude_defaults=True)
