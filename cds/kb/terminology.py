"""Code systems, code normalisation and compiled value sets.

There is no terminology server at run time. Value sets are explicit expansions kept in
``knowledge/valuesets/``; ICD-10-CM families (``C50`` meaning every code under C50) are
declared prefixes; RxNorm products map to their ingredients through a table, so an order for
"tamoxifen 10 MG Oral Tablet" matches the ingredient tamoxifen.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from cds.kb.code_systems import HGNC, ICD10CM, LOINC, RXNORM, SNOMED

__all__ = [
    "SYSTEM_ALIASES",
    "CodeIndex",
    "CompiledValueSet",
    "canonical_system",
    "normalize_code",
]


# Spellings EHRs use for the same systems. Keys are lower-cased and stripped of a trailing '/'.
SYSTEM_ALIASES: dict[str, str] = {
    "http://snomed.info/sct": SNOMED,
    "urn:oid:2.16.840.1.113883.6.96": SNOMED,
    "http://loinc.org": LOINC,
    "urn:oid:2.16.840.1.113883.6.1": LOINC,
    "http://hl7.org/fhir/sid/icd-10-cm": ICD10CM,
    "http://hl7.org/fhir/sid/icd-10": ICD10CM,
    "urn:oid:2.16.840.1.113883.6.90": ICD10CM,
    "http://www.nlm.nih.gov/research/umls/rxnorm": RXNORM,
    "urn:oid:2.16.840.1.113883.6.88": RXNORM,
    "http://www.genenames.org": HGNC,
    "http://www.genenames.org/geneid": HGNC,
    "https://www.genenames.org": HGNC,
}


def canonical_system(system: object) -> str | None:
    if not isinstance(system, str) or not system:
        return None
    key = system.strip().rstrip("/").lower()
    return SYSTEM_ALIASES.get(key, system.strip())


def normalize_code(system: str, code: object) -> str | None:
    """The form a code is indexed and compared in: ICD without dot, upper case; HGNC bare."""
    if not isinstance(code, str):
        if isinstance(code, int) and not isinstance(code, bool):
            code = str(code)
        else:
            return None
    code = code.strip()
    if not code or len(code) > 64:
        return None
    if system == ICD10CM:
        return code.replace(".", "").upper()
    if system == HGNC:
        return code.upper().removeprefix("HGNC:")
    return code


@dataclass(frozen=True)
class CompiledValueSet:
    """A value set ready for matching: exact codes plus ICD-10-CM prefix families."""

    id: str
    title: str
    codes: frozenset[tuple[str, str]]
    prefixes: frozenset[tuple[str, str]] = field(default_factory=frozenset)
    displays: dict[tuple[str, str], str] = field(default_factory=dict, compare=False)
    # words that may hold back an absence claim about the set (ValueSetFile.absence_words)
    absence_words: frozenset[str] = field(default_factory=frozenset, compare=False)

    def contains(self, system: str | None, code: str | None) -> bool:
        if system is None or code is None:
            return False
        if (system, code) in self.codes:
            return True
        return any((system, code[:n]) in self.prefixes for n in range(3, len(code)))

    def keys(self) -> frozenset[tuple[str, str]]:
        return self.codes | self.prefixes


_CodeKey = tuple[str, str]


@dataclass(frozen=True)
class CodeIndex:
    """Which value sets hold each code: the inverse of a set of :class:`CompiledValueSet`.

    Built once per knowledge load. It answers "which value sets can this record's codes
    match" in one pass over the record's distinct codes, so that a rule asking for a value set
    the record never touches is answered without looking anything up.
    """

    exact: dict[_CodeKey, frozenset[str]]  # (system, code) -> value sets listing that code
    families: dict[_CodeKey, frozenset[str]]  # (system, prefix) -> value sets with that family
    known: frozenset[_CodeKey] = frozenset()  # every key of the two: "is this code in any?"
    systems: frozenset[str] = frozenset()  # the code systems some value set uses

    @classmethod
    def of(cls, valuesets: Iterable[CompiledValueSet]) -> CodeIndex:
        exact: dict[_CodeKey, set[str]] = {}
        families: dict[_CodeKey, set[str]] = {}
        for valueset in valuesets:
            for key in valueset.codes:
                exact.setdefault(key, set()).add(valueset.id)
            for key in valueset.prefixes:
                families.setdefault(key, set()).add(valueset.id)
        return cls(
            exact={k: frozenset(v) for k, v in exact.items()},
            families={k: frozenset(v) for k, v in families.items()},
            known=frozenset(exact) | frozenset(families),
            systems=frozenset(system for system, _ in (*exact, *families)),
        )

    def knows(self, system: str, code: str) -> bool:
        """True when some value set could match this (normalised) code."""
        if (system, code) in self.known:
            return True
        if system != ICD10CM:
            return False
        families = self.families
        return any((system, code[:n]) in families for n in range(3, len(code)))

    def matched_by(self, codes: Iterable[_CodeKey], prefixes: Iterable[_CodeKey]) -> set[str]:
        """Value sets that ``codes`` (exact, normalised) or ``prefixes`` (their ICD-10-CM
        prefixes) fall in: the matching of ``PatientRecord.find``, where a code that is itself
        a family's root (``C50``) belongs to the family."""
        found: set[str] = set()
        exact = self.exact
        families = self.families
        for key in codes:
            hit = exact.get(key)
            if hit is not None:
                found |= hit
            hit = families.get(key)
            if hit is not None:
                found |= hit
        for key in prefixes:
            hit = families.get(key)
            if hit is not None:
                found |= hit
        return found
