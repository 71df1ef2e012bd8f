"""The logic vocabulary of rules: schema-checked data, never code.

A rule's ``inclusion`` is a list of nodes that must all hold; its ``exclusion`` a list of
nodes of which none may hold. A node is exactly one of:

- ``all: [nodes]`` / ``any: [nodes]`` / ``not: node``
- ``ref: <definition>``: a named node from ``knowledge/definitions.yaml``
- a fact about the record, keyed by its kind: ``condition``, ``observation``, ``medication``,
  ``procedure``, ``document``, ``research-subject``, ``service-request``, ``draft-order``,
  ``imaging`` (a DiagnosticReport or an ImagingStudy), or any other kind registered in
  :mod:`cds.kb.fact_kinds` (a :class:`FactQuery`)
- ``patient``: age, sex, deceased (a :class:`PatientQuery`)

:func:`walk` is the one traversal of this logic: through ``all``/``any``/``not``, into named
definitions (``ref``) and the definitions anchors name, each definition once. :func:`fold` is
the one structural reading of it: a :class:`NodeFold` says what each kind of node makes of its
parts (a gate, a sentence, a page's phrase, a compiled plan), and ``fold`` does the recursion
and keeps a definition that refers to itself from being entered forever.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Generic, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SerializationInfo,
    SerializerFunctionWrapHandler,
    field_validator,
    model_serializer,
    model_validator,
)

from cds.kb.fact_kinds import KINDS
from cds.protocol.fhir_dates import parse_duration

__all__ = [
    "Anchor",
    "ComponentTest",
    "CountTest",
    "FactQuery",
    "Node",
    "NodeFold",
    "PatientQuery",
    "TrendTest",
    "ValueTest",
    "fold",
    "walk",
]


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


_NODE_KEYS = frozenset({"all", "any", "not", "ref", "patient", "all_", "any_", "not_"})


class Node(_Schema):
    """One node of rule logic; exactly one field is set (see the module docstring).

    A fact is kept under its kind's name as the model's one extra field, so that a kind added
    to :mod:`cds.kb.fact_kinds` needs no field here."""

    model_config = ConfigDict(extra="allow", populate_by_name=True, frozen=True)
    __pydantic_extra__: dict[str, FactQuery] = Field(init=False)

    all_: tuple[Node, ...] | None = Field(None, alias="all")
    any_: tuple[Node, ...] | None = Field(None, alias="any")
    not_: Node | None = Field(None, alias="not")
    ref: str | None = None
    patient: PatientQuery | None = None

    @model_validator(mode="before")
    @classmethod
    def _known_keys(cls, data: Any) -> Any:
        if isinstance(data, dict):
            unknown = [k for k in data if k not in _NODE_KEYS and k not in KINDS]
            if unknown:
                raise ValueError(
                    f"Extra inputs are not permitted: {', '.join(map(repr, unknown))} is "
                    f"neither a logic operator nor a fact kind ({', '.join(KINDS)})"
                )
        return data

    @model_validator(mode="after")
    def _exactly_one(self) -> Node:
        set_fields = [
            name for name in self.model_fields_set if getattr(self, name, None) is not None
        ]
        set_fields += [kind for kind in self.__pydantic_extra__ if kind not in set_fields]
        if len(set_fields) != 1:
            raise ValueError(
                "a logic node has exactly one of all, any, not, ref, patient or a fact kind "
                f"({', '.join(KINDS)}); got {sorted(set_fields) or 'none'}"
            )
        return self

    @model_serializer(mode="wrap")
    def _dump(self, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        """Every registered kind is a key of the full dump, None when unset, as when each was
        a field of its own (the review hash of a rule is taken over this dump)."""
        data = handler(self)
        if not isinstance(data, dict):
            return data
        alias = bool(info.by_alias)
        out: dict[str, Any] = {}
        for key in ("all", "any", "not", "ref") if alias else ("all_", "any_", "not_", "ref"):
            if key in data:
                out[key] = data[key]
        full = not (info.exclude_none or info.exclude_defaults)
        for kind in KINDS:
            spelled = kind if alias else kind.replace("-", "_")
            if kind in data:
                out[spelled] = data[kind]
            elif full:
                out[spelled] = None
        if "patient" in data:
            out["patient"] = data["patient"]
        return out

    def fact(self) -> tuple[str, FactQuery] | None:
        """(kind, query) when the node is a fact, else None."""
        for item in self.__pydantic_extra__.items():
            return item
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
        data: dict[str, Any] = self.model_dump(
            by_alias=True, exclude_none=True, exclude_defaults=True
        )
        return data


def walk(
    roots: Iterable[Node],
    definitions: Mapping[str, Node] | None = None,
    *,
    anchors: bool = True,
    negations: bool = True,
    enter: Callable[[str], bool] | None = None,
    reached: list[str] | None = None,
    breadth_first: bool = False,
) -> Iterator[Node]:
    """Every node under ``roots``, depth first in the order written (or ``breadth_first``),
    each definition once.

    With ``definitions``, a ``ref`` is followed into the definition it names, and (with
    ``anchors``) so is the definition a fact's ``after``/``before`` anchor names; a name that
    is not defined, or already entered, is not entered again (so a cycle ends). ``negations``
    False leaves out what is under a ``not``; ``enter`` may refuse a definition by name.
    ``reached`` collects the names of the definitions entered, in the order entered.
    """
    entered: set[str] = set()
    pending: deque[Node] = deque(roots)
    take = pending.popleft if breadth_first else pending.pop
    if not breadth_first:
        pending.reverse()
    while pending:
        node = take()
        yield node
        if node.not_ is not None and not negations:
            continue
        follow: list[str] = []
        if definitions is not None:
            if node.ref is not None:
                follow.append(node.ref)
            elif anchors:
                fact = node.fact()
                if fact is not None:
                    query = fact[1]
                    follow += [a.name for a in (query.after, query.before) if a is not None]
        pushed: list[Node] = list(node.children())
        for name in follow:
            if name in entered or definitions is None or name not in definitions:
                continue
            if enter is not None and not enter(name):
                continue
            entered.add(name)
            if reached is not None:
                reached.append(name)
            pushed.append(definitions[name])
        pending.extend(pushed if breadth_first else reversed(pushed))


T = TypeVar("T")


class NodeFold(Generic[T]):
    """What one reading of the logic makes of each kind of node, given what it made of the
    node's parts; :func:`fold` calls these bottom-up. Every method must be given."""

    def fact(self, node: Node, kind: str, query: FactQuery) -> T:
        raise NotImplementedError

    def patient(self, node: Node, query: PatientQuery) -> T:
        raise NotImplementedError

    def all_of(self, node: Node, parts: list[T]) -> T:
        raise NotImplementedError

    def any_of(self, node: Node, parts: list[T]) -> T:
        raise NotImplementedError

    def none_of(self, node: Node, part: T) -> T:
        """``not``: ``part`` is what the reading made of ``node.not_``."""
        raise NotImplementedError

    def ref(self, node: Node, name: str, expand: Callable[[], T] | None) -> T:
        """``ref: name``. ``expand()`` reads the named definition, when ``fold`` was given the
        definitions; it is None when the name is not defined, or when the definition is already
        being read on this path (a definition that refers to itself)."""
        raise NotImplementedError


def fold(node: Node, reading: NodeFold[T], definitions: Mapping[str, Node] | None = None) -> T:
    """What ``reading`` makes of ``node``, its parts read first; a definition is read (through
    ``expand``) only when the reading asks, and never twice on one path."""
    return _fold(node, reading, definitions or {}, ())


def _fold(
    node: Node, reading: NodeFold[T], definitions: Mapping[str, Node], path: tuple[str, ...]
) -> T:
    fact = node.fact()
    if fact is not None:
        return reading.fact(node, *fact)
    if node.ref is not None:
        name = node.ref
        target = definitions.get(name)
        if target is None or name in path:
            return reading.ref(node, name, None)
        inner = (*path, name)
        return reading.ref(node, name, lambda: _fold(target, reading, definitions, inner))
    if node.all_ is not None:
        return reading.all_of(node, [_fold(c, reading, definitions, path) for c in node.all_])
    if node.any_ is not None:
        return reading.any_of(node, [_fold(c, reading, definitions, path) for c in node.any_])
    if node.not_ is not None:
        return reading.none_of(node, _fold(node.not_, reading, definitions, path))
    assert node.patient is not None  # the schema guarantees exactly one field
    return reading.patient(node, node.patient)
