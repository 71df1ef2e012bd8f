"""One patient's record, indexed once per request.

The request's data (prefetch plus what was fetched) becomes a :class:`PatientRecord`: every
resource a rule can ask about is indexed by kind and by (system, code), so that each rule's
look-up is a few dictionary hits rather than a scan. Resources are read defensively: a
malformed one is skipped and counted, never fatal, and nothing is validated up front.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from cds.engine.record_guard import belongs_to
from cds.kb.code_systems import ICD10CM, LOINC, RXNORM, SNOMED
from cds.kb.fact_kinds import KIND_OF_TYPE, KINDS, resource_date
from cds.kb.terminology import CodeIndex, CompiledValueSet, canonical_system, normalize_code
from cds.protocol.fhir_dates import parse_fhir_datetime

__all__ = [
    "Item",
    "PatientRecord",
    "Reader",
    "Unclassified",
    "referenced_medication",
    "register_reader",
]

# The concepts (CodeableConcepts) of a resource that hold its codes, given the Medications at
# hand (a medicationReference is read through them).
Concepts = Callable[[dict[str, Any], Mapping[str, dict[str, Any]]], list[Any]]


@dataclass(frozen=True)
class Reader:
    """How the record reads one fact kind's resources: the code extraction of its kind
    (:class:`cds.kb.fact_kinds.FactKind` names the elements), and the one code system a
    resource of the kind must carry to be classified (None: any system a value set uses)."""

    concepts: Concepts
    classified_by: str | None = None


def _coded(resource: dict[str, Any], medications: Mapping[str, dict[str, Any]]) -> list[Any]:
    return [resource.get("code")]


# Fact kind -> its reader; a kind with none is read by ``code``.
READERS: dict[str, Reader] = {}
_DEFAULT_READER = Reader(_coded)


def register_reader(kind: str, reader: Reader) -> Reader:
    """Register how resources of ``kind`` (a registered fact kind) are read."""
    if kind not in KINDS:
        raise ValueError(f"{kind!r} is not a registered fact kind (cds.kb.fact_kinds)")
    READERS[kind] = reader
    return reader


_UNREAD: Any = object()


@dataclass(slots=True, eq=False)
class Item:
    """One indexed resource with what rules read of it, computed once.

    The date is parsed on first use: most resources of a long record are never touched by a
    rule, and date parsing is a quarter of the cost of indexing them.
    """

    resource: dict[str, Any]
    rtype: str
    id: str
    codings: list[tuple[str, str, str]]  # (system, normalised code, display)
    seq: int = 0  # position in the record: look-ups return items in this order
    _date: Any = _UNREAD

    @property
    def date(self) -> datetime | None:
        if self._date is _UNREAD:
            self._date = resource_date(self.resource)
        parsed: datetime | None = self._date
        return parsed

    def display(self) -> str:
        for _, _code, display in self.codings:
            if display:
                return display
        return self.codings[0][1] if self.codings else self.rtype

    def ref(self) -> str:
        return f"{self.rtype}/{self.id}" if self.id else self.rtype


@dataclass(frozen=True, slots=True)
class Unclassified:
    """A resource of a kind an absence claim is about, with no code the service can read: its
    words (text and displays) are kept, only to hold back such a claim (docs/record-reading.md)."""

    resource: dict[str, Any]
    rtype: str
    id: str
    text: str  # what it says about itself, lower-cased, or "" when it says nothing

    def label(self) -> str:
        shown = self.text[:60] or "no text"
        return f"{self.rtype}/{self.id or '(no id)'} '{shown}'"


@dataclass
class PatientRecord:
    """The indexed record. Build with :meth:`build`; query with :meth:`find`."""

    patient: dict[str, Any] | None
    now: datetime
    items: dict[str, list[Item]] = field(default_factory=lambda: defaultdict(list))
    skipped: int = 0
    # kind -> (system, code) -> items; and kind -> (ICD system, code prefix) -> items. Keyed by
    # kind first so that a look-up intersects two key sets (in C) instead of probing each code.
    _by_code: dict[str, dict[tuple[str, str], list[Item]]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    _by_prefix: dict[str, dict[tuple[str, str], list[Item]]] = field(
        default_factory=lambda: defaultdict(dict)
    )
    _found: dict[tuple[str, str], list[Item]] = field(default_factory=dict)
    _all: dict[str, list[Item]] = field(default_factory=dict)  # kind -> all_of(kind)
    _count: int = 0
    # With an index, resources no rule can ask about are left out (see ``build``).
    _index: CodeIndex | None = None
    _whole_kinds: Collection[str] = ()
    unread: int = 0  # resources left out that way
    # kind -> resources of kinds whose absence rules claim (FactKind.absence_claimed) that carry
    # no classifiable code (see Unclassified)
    unclassified: dict[str, list[Unclassified]] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        resources: Iterable[Any],
        *,
        now: datetime,
        patient_id: str | None = None,
        draft_orders: Iterable[Any] = (),
        ingredients: Mapping[str, tuple[str, ...]] | None = None,
        index: CodeIndex | None = None,
        kinds_read_whole: Collection[str] = (),
    ) -> PatientRecord:
        """Index ``resources``. Given the knowledge's code ``index``, a resource none of whose
        codes falls in any value set is left out, unless its kind is read whole
        (``kinds_read_whole``): no rule could find it, and a long record is mostly such codes."""
        record = cls(patient=None, now=now, _index=index, _whole_kinds=kinds_read_whole)
        ingredients = ingredients or {}
        medications: dict[str, dict[str, Any]] = {}
        pending: list[dict[str, Any]] = []
        for resource in resources:
            if not isinstance(resource, dict):
                record.skipped += 1
                continue
            rtype = resource.get("resourceType")
            if not isinstance(rtype, str):
                record.skipped += 1
                continue
            if rtype == "Patient":
                if record.patient is None and (
                    patient_id is None or resource.get("id") in (patient_id, None)
                ):
                    record.patient = resource
            elif rtype == "Medication":
                if isinstance(resource.get("id"), str):
                    medications[resource["id"]] = resource
            elif rtype in KIND_OF_TYPE:
                if patient_id and not belongs_to(resource, patient_id):
                    record.skipped += 1
                    continue
                pending.append(resource)
        drafts: list[dict[str, Any]] = []
        for resource in draft_orders:
            if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
                record.skipped += 1
            elif resource["resourceType"] == "Medication":  # what a draft order references
                if isinstance(resource.get("id"), str):
                    medications.setdefault(resource["id"], resource)
            else:
                drafts.append(resource)
        for resource in pending:
            record._add(KIND_OF_TYPE[resource["resourceType"]], resource, medications, ingredients)
        for resource in drafts:
            record._add("draft-order", resource, medications, ingredients)
        return record

    def _add(
        self,
        kind: str,
        resource: dict[str, Any],
        medications: Mapping[str, dict[str, Any]],
        ingredients: Mapping[str, tuple[str, ...]],
    ) -> None:
        reader = READERS.get(kind, _DEFAULT_READER)
        try:
            codings = _codings_of(reader.concepts(resource, medications))
        except (AttributeError, TypeError):
            self.skipped += 1
            return
        claimed = KINDS[kind].absence_claimed
        index = self._index
        if index is not None and kind not in self._whole_kinds:
            known = index.known
            for system, code, _ in codings:
                if (system, code) in known:
                    break
                if system == ICD10CM and index.knows(system, code):
                    break
                if system == RXNORM and any(
                    (RXNORM, ingredient) in known for ingredient in ingredients.get(code, ())
                ):
                    break
            else:  # no code of it is in any value set: no rule can find it
                if claimed and not _classifiable(reader, codings, index):
                    self._keep_unclassified(kind, resource, medications)
                self.unread += 1
                return
            # (a code in a value set is a classifiable code: nothing to keep)
        elif claimed and not _classifiable(reader, codings, index):
            self._keep_unclassified(kind, resource, medications)
        rid = resource.get("id")
        item = Item(
            resource=resource,
            rtype=str(resource["resourceType"]),
            id=rid if isinstance(rid, str) else "",
            codings=codings,
            seq=self._count,
        )
        self._count += 1
        self.items[kind].append(item)
        if len(codings) == 1 and codings[0][0] not in (RXNORM, ICD10CM):
            # the usual case (one LOINC or SNOMED coding): no ingredients, no families
            system, code, _ = codings[0]
            self._by_code[kind].setdefault((system, code), []).append(item)
            return
        by_code = self._by_code[kind]
        seen: set[tuple[str, str]] = set()
        for system, code, _ in codings:
            keys = [(system, code)]
            if system == RXNORM:
                keys += [(RXNORM, ingredient) for ingredient in ingredients.get(code, ())]
            for key in keys:
                if key in seen:
                    continue
                seen.add(key)
                by_code.setdefault(key, []).append(item)
            if system == ICD10CM:
                by_prefix = self._by_prefix[kind]
                for n in range(3, len(code)):
                    by_prefix.setdefault((system, code[:n]), []).append(item)

    def _keep_unclassified(
        self, kind: str, resource: dict[str, Any], medications: Mapping[str, dict[str, Any]]
    ) -> None:
        rid = resource.get("id")
        concepts = READERS.get(kind, _DEFAULT_READER).concepts(resource, medications)
        words = " ".join(_words_of(resource, concepts)).lower()
        self.unclassified.setdefault(kind, []).append(
            Unclassified(
                resource=resource,
                rtype=str(resource["resourceType"]),
                id=rid if isinstance(rid, str) else "",
                text=" ".join(words.split())[:500],
            )
        )

    def find(self, kind: str, valueset: CompiledValueSet) -> list[Item]:
        """Every item of ``kind`` with a code in ``valueset``, in record order, once each (and
        a resource sent twice, same type and id, once: see :func:`_once_each`).

        Codes match exactly (ICD-10-CM after removing the dot); only a declared family
        (``valueset.prefixes``) matches the codes under it. Record order, not the value set's
        (hash-ordered) iteration, decides the order, so explanations are deterministic.
        """
        cache_key = (kind, valueset.id)
        found = self._found.get(cache_key)
        if found is not None:
            return found
        hits: dict[int, Item] = {}
        by_code = self._by_code.get(kind)
        if not by_code:  # nothing coded of this kind: no prefix entries either
            nothing: list[Item] = []
            self._found[cache_key] = nothing
            return nothing
        for key in _common_keys(by_code, valueset.codes):
            for item in by_code[key]:
                hits.setdefault(item.seq, item)
        if valueset.prefixes:
            by_prefix = self._by_prefix.get(kind, {})
            for key in _common_keys(by_code, valueset.prefixes):
                for item in by_code[key]:
                    hits.setdefault(item.seq, item)
            for key in _common_keys(by_prefix, valueset.prefixes):
                for item in by_prefix[key]:
                    hits.setdefault(item.seq, item)
        if not hits:
            found = []
        elif len(hits) == 1:
            found = list(hits.values())
        else:
            found = _once_each([hits[seq] for seq in sorted(hits)])
        self._found[cache_key] = found
        return found

    def coded_kinds(self) -> list[str]:
        """The kinds with at least one coded resource."""
        return [kind for kind, codes in self._by_code.items() if codes]

    def code_keys(
        self, kind: str
    ) -> tuple[Collection[tuple[str, str]], Collection[tuple[str, str]]]:
        """The distinct (system, code) keys of ``kind``, and their ICD-10-CM prefixes."""
        return self._by_code.get(kind, {}).keys(), self._by_prefix.get(kind, {}).keys()

    def all_of(self, kind: str) -> list[Item]:
        """Every item of ``kind``, in record order, a resource sent twice once."""
        found = self._all.get(kind)
        if found is None:
            found = self._all[kind] = _once_each(self.items.get(kind, []))
        return found

    # --- the Patient resource ---------------------------------------------------------------

    @property
    def deceased(self) -> bool:
        patient = self.patient or {}
        if patient.get("deceasedBoolean") is True:
            return True
        return parse_fhir_datetime(patient.get("deceasedDateTime")) is not None

    @property
    def sex(self) -> str | None:
        gender = (self.patient or {}).get("gender")
        return gender if isinstance(gender, str) else None

    @property
    def age_years(self) -> int | None:
        born = parse_fhir_datetime((self.patient or {}).get("birthDate"))
        if born is None:
            return None
        years = self.now.year - born.year
        if (self.now.month, self.now.day) < (born.month, born.day):
            years -= 1
        return years


def _common_keys(
    index: dict[tuple[str, str], list[Item]], codes: frozenset[tuple[str, str]]
) -> Iterable[tuple[str, str]]:
    """The keys of ``index`` in ``codes``, found by walking the smaller of the two.

    ``dict.keys() & frozenset`` always walks the frozenset (only an exact ``set`` gets the
    smaller-side shortcut), and ``frozenset.intersection(dict)`` always walks the dict.
    """
    if len(index) < len(codes):
        return codes.intersection(index)
    return index.keys() & codes


def _medication_concepts_of(
    resource: dict[str, Any], medications: Mapping[str, dict[str, Any]]
) -> list[Any]:
    concept = resource.get("medicationCodeableConcept")
    if concept is not None:
        return [concept]
    return _medication_concepts(referenced_medication(resource, medications))


def _imaging_concepts(
    resource: dict[str, Any], medications: Mapping[str, dict[str, Any]]
) -> list[Any]:
    if resource["resourceType"] != "ImagingStudy":
        return [resource.get("code")]
    # what was done (procedureCode) and how (modality Codings)
    codes = resource.get("procedureCode")
    modality = resource.get("modality")
    return [
        *(codes if isinstance(codes, list) else []),
        {"coding": modality} if isinstance(modality, list) else None,
    ]


def _document_concepts(
    resource: dict[str, Any], medications: Mapping[str, dict[str, Any]]
) -> list[Any]:
    category = resource.get("category")
    return [resource.get("type"), *(category if isinstance(category, list) else [category])]


def _draft_concepts(
    resource: dict[str, Any], medications: Mapping[str, dict[str, Any]]
) -> list[Any]:
    """A draft order is of any type, read as a resource of that type is on the record."""
    kind = KIND_OF_TYPE.get(resource["resourceType"])
    reader = READERS.get(kind, _DEFAULT_READER) if kind is not None else _DEFAULT_READER
    return reader.concepts(resource, medications)


def referenced_medication(
    resource: dict[str, Any], medications: Mapping[str, dict[str, Any]]
) -> dict[str, Any] | None:
    """The Medication a ``medicationReference`` points at: contained (``#id``) or one of
    ``medications`` (by id); None when it names none or the Medication is not at hand."""
    reference = resource.get("medicationReference")
    if not isinstance(reference, dict) or not isinstance(reference.get("reference"), str):
        return None
    ref = reference["reference"]
    if ref.startswith("#"):
        for contained in _listed(resource.get("contained")):
            if isinstance(contained, dict) and contained.get("id") == ref[1:]:
                return contained
        return None
    return medications.get(ref.rsplit("/", 1)[-1].removeprefix("urn:uuid:"))


def _medication_concepts(medication: dict[str, Any] | None) -> list[Any]:
    """A Medication's code and its ingredients' ``itemCodeableConcept`` (a compounded or
    multi-ingredient product is often coded only by its ingredients)."""
    if medication is None:
        return []
    concepts = [medication.get("code")]
    for ingredient in _listed(medication.get("ingredient")):
        if isinstance(ingredient, dict):
            concepts.append(ingredient.get("itemCodeableConcept"))
    return concepts


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


# Systems whose codes the service classifies when no index says which (a record built without
# the knowledge's code index, as some tests and tools do).
_DEFAULT_SYSTEMS = frozenset({SNOMED, LOINC, ICD10CM, RXNORM})


def _once_each(items: list[Item]) -> list[Item]:
    """``items`` without a second resource of the same type and id (a page sent twice, an entry
    under two keys): counted twice, one headache would be "recurrent headaches". Done where
    items are looked up, not while indexing, since it matters only where two items match."""
    if len(items) < 2:
        return items
    seen: set[tuple[str, str]] = set()
    once: list[Item] = []
    for item in items:
        if item.id:
            key = (item.rtype, item.id)
            if key in seen:
                continue
            seen.add(key)
        once.append(item)
    return once


def _classifiable(
    reader: Reader, codings: list[tuple[str, str, str]], index: CodeIndex | None
) -> bool:
    """Whether the service can tell what this resource is from its codes. A medicine needs an
    RxNorm code (products map to ingredients: its reader says so); anything else a code in a
    system some value set uses. Text, local codes and NDCs alone cannot be classified."""
    if reader.classified_by is not None:
        return any(system == reader.classified_by for system, _, _ in codings)
    systems = _DEFAULT_SYSTEMS if index is None else index.systems
    return any(system in systems for system, _, _ in codings)


def _words_of(resource: dict[str, Any], concepts: list[Any]) -> list[str]:
    """Every text and display a resource (and a Medication it references) gives itself."""
    words: list[str] = []
    reference = resource.get("medicationReference")
    if isinstance(reference, dict) and isinstance(reference.get("display"), str):
        words.append(reference["display"])
    for concept in concepts:
        if not isinstance(concept, dict):
            continue
        if isinstance(concept.get("text"), str):
            words.append(concept["text"])
        for coding in _listed(concept.get("coding")):
            if isinstance(coding, dict) and isinstance(coding.get("display"), str):
                words.append(coding["display"])
    return words


# (system, code) as sent -> (canonical system, normalised code), or None when unusable. A
# record repeats a few hundred codes thousands of times, and so do consecutive requests.
_NORMALIZED: dict[tuple[str, str], tuple[str, str] | None] = {}
_NORMALIZED_LIMIT = 100_000


def _normalized(system: Any, code: Any) -> tuple[str, str] | None:
    cacheable = type(system) is str and type(code) is str
    if cacheable:
        try:
            return _NORMALIZED[(system, code)]
        except KeyError:
            pass
    canonical = canonical_system(system)
    normal = normalize_code(canonical, code) if canonical is not None else None
    result = None if canonical is None or normal is None else (canonical, normal)
    if cacheable:
        if len(_NORMALIZED) >= _NORMALIZED_LIMIT:
            _NORMALIZED.clear()
        _NORMALIZED[(system, code)] = result
    return result


def _codings_of(concepts: list[Any]) -> list[tuple[str, str, str]]:
    out: list[tuple[str, str, str]] = []
    for concept in concepts:
        if not isinstance(concept, dict):
            continue
        for coding in concept.get("coding") or ():
            if not isinstance(coding, dict):
                continue
            normalized = _normalized(coding.get("system"), coding.get("code"))
            if normalized is None:
                continue
            system, code = normalized
            display = coding.get("display")
            text = display if isinstance(display, str) else concept.get("text")
            out.append((system, code, text[:200] if isinstance(text, str) else ""))
    return out


register_reader("medication", Reader(_medication_concepts_of, classified_by=RXNORM))
register_reader("imaging", Reader(_imaging_concepts))
register_reader("document", Reader(_document_concepts))
register_reader("draft-order", Reader(_draft_concepts))
