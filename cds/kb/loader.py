"""Load and validate ``knowledge/`` and ``cards/`` into one immutable :class:`Knowledge`.

Validation is total: every problem is collected (file and field named) and raised together as
:class:`~cds.errors.KnowledgeError`, so the service refuses to start on bad knowledge and
``cds knowledge check`` can print all of it at once.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from cds.errors import KnowledgeError
from cds.kb.card_parts import CardParts, compile_card_parts
from cds.kb.code_systems import RXNORM, SNOMED, SYSTEM_SHORTHANDS
from cds.kb.fact_kinds import KINDS
from cds.kb.finding_relations import overlap_problems
from cds.kb.logic import Node, walk
from cds.kb.plans import Program, compile_program
from cds.kb.prefetch_plan import PrefetchPlan, plan_prefetch
from cds.kb.rule_gates import Gate
from cds.kb.schemas import (
    CardTemplate,
    Case,
    Definition,
    EducationPage,
    Finding,
    Logic,
    OverrideReasonSpec,
    Rule,
    ServiceSpec,
    SourceDocument,
    ValueSetFile,
)
from cds.kb.suggestion_check import check_suggestion_resource, education_placeholders
from cds.kb.terminology import CodeIndex, CompiledValueSet, canonical_system, normalize_code
from cds.protocol.wire import HOOKS
from cds.strict_yaml import load_yaml_text

__all__ = ["Knowledge", "Service", "load_knowledge", "reset_probes"]


@dataclass(frozen=True)
class Service:
    spec: ServiceSpec
    rules: tuple[Rule, ...]
    prefetch: PrefetchPlan


def reset_probes(rule: Rule) -> tuple[Rule, ...]:
    """One rule per ``repeat_resets_on`` definition of ``rule``, firing when that definition
    holds: what :mod:`cds.call.repeat_limits` evaluates to add those facts to a card's
    fingerprint."""
    return tuple(
        rule.model_copy(
            update={
                "id": f"{rule.id}-resets-{name}",
                "logic": Logic(inclusion=(Node.model_validate({"ref": name}),)),
            }
        )
        for name in rule.repeat_resets_on
    )


@dataclass(frozen=True)
class Knowledge:
    """Everything the engine and pages need, loaded once at start-up."""

    services: dict[str, Service]
    rules: dict[str, Rule]
    definitions: dict[str, Node]
    definition_docs: dict[str, Definition]
    valuesets: dict[str, CompiledValueSet]
    valueset_files: dict[str, ValueSetFile]
    ingredients: dict[str, tuple[str, ...]]
    templates: dict[str, CardTemplate]
    education: dict[str, EducationPage]
    override_reasons: dict[str, OverrideReasonSpec]
    source: SourceDocument
    cases: dict[str, tuple[Case, ...]]
    fixtures: dict[str, dict[str, Any]]
    rule_files: dict[str, Path] = field(default_factory=dict)
    # Value set id -> where its codes come from (list, includes, SNOMED CT descendants).
    valueset_sources: dict[str, str] = field(default_factory=dict)
    findings: dict[str, Finding] = field(default_factory=dict)  # knowledge/findings.yaml
    # Every rule's card, compiled and checked against the Card model (cds.kb.card_parts).
    # Compiled from the fields above by load_knowledge: a copy made with other rules, templates
    # or findings (dataclasses.replace) keeps these and renders them.
    card_parts: CardParts = field(kw_only=True, repr=False, compare=False)
    code_index: CodeIndex = field(init=False, repr=False, compare=False)
    # Fact kinds some rule or definition reads without a value set (every resource of the kind).
    kinds_read_whole: frozenset[str] = field(init=False, repr=False, compare=False)
    # Rule id -> codes the rule cannot fire without (see cds.kb.rule_gates).
    rule_gates: dict[str, tuple[Gate, ...]] = field(init=False, repr=False, compare=False)
    # Every rule and definition compiled to the plans the engine runs (see cds.kb.plans).
    program: Program = field(init=False, repr=False, compare=False)
    # rule id -> one probe rule per repeat_resets_on definition (cds.call.repeat_limits), and
    # every rule the program holds a plan for (the rules and these probes), by id.
    reset_probes: dict[str, tuple[Rule, ...]] = field(init=False, repr=False, compare=False)
    compiled_rules: dict[str, Rule] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "code_index", CodeIndex.of(self.valuesets.values()))
        roots = [n for r in self.rules.values() for n in (*r.logic.inclusion, *r.logic.exclusion)]
        whole = {
            fact[0]
            for node in walk([*roots, *self.definitions.values()])
            if (fact := node.fact()) is not None and fact[1].valueset is None
        }
        object.__setattr__(self, "kinds_read_whole", frozenset(whole))
        probes = {r.id: reset_probes(r) for r in self.rules.values() if r.repeat_resets_on}
        object.__setattr__(self, "reset_probes", probes)
        compiled = {**self.rules, **{p.id: p for group in probes.values() for p in group}}
        object.__setattr__(self, "compiled_rules", compiled)
        program = compile_program(compiled, self.definitions, self.definition_docs, self.valuesets)
        object.__setattr__(self, "program", program)
        gates = {rule_id: plan.gates for rule_id, plan in program.rules.items()}
        object.__setattr__(self, "rule_gates", gates)

    def reset_probes_of(self, rule: Rule) -> tuple[Rule, ...]:
        """The probes of ``rule``: kept from load for the knowledge's own rules, made now for
        another (a test's)."""
        kept = self.reset_probes.get(rule.id)
        if kept is not None and self.rules.get(rule.id) is rule:
            return kept
        return reset_probes(rule)

    def services_for(self, hook: str) -> list[Service]:
        return [s for s in self.services.values() if s.spec.hook == hook]

    def used_by(self, rules: Iterable[Rule]) -> tuple[set[str], set[str]]:
        """(value set ids, definition names) that ``rules`` reach, through definitions,
        anchors, value tests, components and value set includes."""
        valuesets: set[str] = set()
        entered: list[str] = []
        roots = [n for r in rules for n in (*r.logic.inclusion, *r.logic.exclusion)]
        for node in walk(roots, self.definitions, reached=entered):
            fact = node.fact()
            if fact is not None:
                valuesets.update(fact[1].valuesets())
        reached = set(entered)
        pending = list(valuesets)
        while pending:
            vs_file = self.valueset_files.get(pending.pop())
            for included in vs_file.include if vs_file else ():
                if included not in valuesets:
                    valuesets.add(included)
                    pending.append(included)
        return valuesets, reached


class _Problems:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.items: list[str] = []

    def add(self, path: Path, message: str) -> None:
        try:
            shown = path.relative_to(self.root)
        except ValueError:
            shown = path
        self.items.append(f"{shown}: {message}")

    def parse(self, path: Path, model: type[BaseModel], data: Any, at: str = "") -> Any:
        """Validate ``data``; ``at`` is where it sits in the file (``services.2``)."""
        try:
            return model.model_validate(data)
        except ValidationError as exc:
            for error in exc.errors():
                where = ".".join([*([at] if at else []), *(str(p) for p in error["loc"])])
                self.add(path, f"{where or '(top)'}: {error['msg']}")
            return None


def _read_yaml(path: Path, problems: _Problems) -> Any:
    try:
        return load_yaml_text(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        problems.add(path, f"cannot read YAML: {exc}")
        return None


_FRONT_MATTER = re.compile(r"^---\n(.*?)\n---\n(.*)$", re.DOTALL)


def load_knowledge(
    knowledge_dir: Path,
    cards_dir: Path,
    *,
    with_cases: bool = True,
    site_terminology: Path | None = None,
) -> Knowledge:
    """Load, validate and index all knowledge and content. Raises KnowledgeError.

    ``with_cases=False`` leaves out the rule cases and their fixtures (test data the engine
    never reads): `cds evaluate` uses it to start faster. ``site_terminology`` is a folder
    written by `cds terminology import` (``CDS_TERMINOLOGY_DIR``): its product table is merged
    over the shipped one, a site row replacing a shipped row of the same product.
    """
    problems = _Problems(knowledge_dir.parent)
    source = _load_source(knowledge_dir / "sources.yaml", problems)
    valueset_files = _load_many(knowledge_dir / "valuesets", ValueSetFile, problems)
    ingredients, brands = _load_ingredients(
        knowledge_dir / "terminology" / "rxnorm-ingredients.yaml", problems
    )
    descendants = _load_descendants(
        knowledge_dir / "terminology" / "snomed-descendants.yaml", "shipped", problems
    )
    if site_terminology is not None:
        if not site_terminology.is_dir():
            problems.add(site_terminology, "CDS_TERMINOLOGY_DIR is not a folder")
        site_ingredients, site_brands = _load_ingredients(
            site_terminology / "rxnorm-ingredients.yaml", problems
        )
        ingredients |= site_ingredients
        for ingredient, names in site_brands.items():
            brands.setdefault(ingredient, set()).update(names)
        descendants |= _load_descendants(
            site_terminology / "snomed-descendants.yaml", "site", problems
        )
    valuesets = _compile_valuesets(
        valueset_files, knowledge_dir / "valuesets", problems, descendants, brands
    )
    templates = _load_many(cards_dir / "templates", CardTemplate, problems)
    override_reasons = _load_override_reasons(cards_dir / "override-reasons.yaml", problems)
    education = _load_education(cards_dir / "education", problems)
    definition_docs = _load_definitions(knowledge_dir / "definitions.yaml", problems)
    rules, rule_files = _load_rules(knowledge_dir / "rules", problems)
    fixtures: dict[str, dict[str, Any]] = {}
    cases: dict[str, tuple[Case, ...]] = {}
    if with_cases:
        fixtures = _load_fixtures(knowledge_dir / "fixtures.yaml", problems)
        cases = _load_cases(knowledge_dir / "rules", problems)

    definitions = {name: d.logic for name, d in definition_docs.items()}
    _check_references(
        problems,
        rules=rules,
        rule_files=rule_files,
        definitions=definitions,
        valuesets=valuesets,
        templates=templates,
        education=education,
        override_reasons=override_reasons,
        source=source,
        knowledge_dir=knowledge_dir,
        education_dir=cards_dir / "education",
    )
    _check_cases(
        problems,
        cases=cases,
        rules=rules,
        fixtures=fixtures,
        definitions=definitions,
        valuesets=valuesets,
        folder=knowledge_dir / "rules",
    )
    findings = _load_findings(knowledge_dir / "findings.yaml", templates, problems)
    for rule_id, message in overlap_problems(rules, definitions, valuesets, findings):
        problems.add(rule_files[rule_id], message)
    services = _load_services(
        knowledge_dir / "services.yaml", rules, definitions, valuesets, problems
    )
    if problems.items:
        raise KnowledgeError(problems.items)
    card_parts, card_problems = compile_card_parts(
        rules=rules,
        templates=templates,
        education=education,
        override_reasons=override_reasons,
        findings=findings,
        definition_docs=definition_docs,
    )
    for problem in card_problems:
        if problem.rule_id is not None:
            problems.add(rule_files[problem.rule_id], f"card: {problem.message}")
        else:
            problems.add(
                knowledge_dir / "findings.yaml", f"{problem.finding_id}: {problem.message}"
            )
    if problems.items:
        raise KnowledgeError(problems.items)
    assert source is not None
    return Knowledge(
        services=services,
        rules=rules,
        definitions=definitions,
        definition_docs=definition_docs,
        valuesets=valuesets,
        valueset_files=valueset_files,
        ingredients=ingredients,
        templates=templates,
        education=education,
        override_reasons=override_reasons,
        source=source,
        cases=cases,
        fixtures=fixtures,
        rule_files=rule_files,
        valueset_sources=_valueset_sources(valueset_files, descendants),
        card_parts=card_parts,
        findings=findings,
    )


def _load_findings(
    path: Path, templates: dict[str, CardTemplate], problems: _Problems
) -> dict[str, Finding]:
    """``knowledge/findings.yaml``: the findings whose rules merge into one card (optional)."""
    if not path.exists():
        return {}
    data = _read_yaml(path, problems)
    out: dict[str, Finding] = {}
    if not isinstance(data, dict) or not isinstance(data.get("findings"), list):
        problems.add(path, "expected 'findings: [...]'")
        return out
    for index, entry in enumerate(data["findings"]):
        finding = problems.parse(path, Finding, entry, f"findings.{index}")
        if finding is None:
            continue
        if finding.id in out:
            problems.add(path, f"findings.{index}.id: duplicate finding {finding.id!r}")
        if finding.template not in templates:
            problems.add(path, f"findings.{index}.template: unknown template {finding.template!r}")
        out[finding.id] = finding
    return out


def _load_source(path: Path, problems: _Problems) -> SourceDocument | None:
    data = _read_yaml(path, problems)
    return problems.parse(path, SourceDocument, data) if data is not None else None


def _load_many(folder: Path, model: type[Any], problems: _Problems) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for path in sorted(folder.glob("*.yaml")):
        data = _read_yaml(path, problems)
        if not isinstance(data, dict):
            if data is not None:
                problems.add(path, "expected a mapping")
            continue
        parsed = problems.parse(path, model, data)
        if parsed is None:
            continue
        if parsed.id != path.stem:
            problems.add(path, f"id: {parsed.id!r} must equal the file name {path.stem!r}")
        if parsed.id in out:
            problems.add(path, f"id: duplicate id {parsed.id!r}")
        out[parsed.id] = parsed
    return out


# SNOMED CT concept -> (its descendants' codes and displays, "shipped" or "site").
Descendants = dict[str, tuple[dict[str, str], str]]


def _load_descendants(path: Path, origin: str, problems: _Problems) -> Descendants:
    if not path.exists():
        return {}
    data = _read_yaml(path, problems)
    if not isinstance(data, dict) or not isinstance(data.get("concepts"), dict):
        problems.add(path, "expected 'concepts: {<code>: {display, descendants: {...}}}'")
        return {}
    out: Descendants = {}
    for concept, entry in data["concepts"].items():
        members = entry.get("descendants") if isinstance(entry, dict) else None
        if not isinstance(members, dict):
            problems.add(path, f"concepts.{concept}: needs a descendants mapping")
            continue
        out[str(concept)] = (
            {str(code): str((m or {}).get("display", "")) for code, m in members.items()},
            origin,
        )
    return out


def _valueset_sources(files: dict[str, ValueSetFile], descendants: Descendants) -> dict[str, str]:
    """A line per value set saying where its codes come from, for `cds knowledge check`."""
    out: dict[str, str] = {}
    for vs_id, vs in files.items():
        parts = []
        if vs.codes or vs.families:
            parts.append(f"list ({len(vs.codes)} codes, {len(vs.families)} ICD-10-CM families)")
        parts += [f"include {included}" for included in vs.include]
        for entry in vs.descendants_of:
            members, origin = descendants.get(entry.code, ({}, "none"))
            parts.append(f"descendants of {entry.code} ({len(members)}, {origin})")
        out[vs_id] = "; ".join(parts)
    return out


def _compile_valuesets(
    files: dict[str, ValueSetFile],
    folder: Path,
    problems: _Problems,
    descendants: Descendants | None = None,
    brands: dict[str, set[str]] | None = None,
) -> dict[str, CompiledValueSet]:
    """Each value set's codes, families and displays, through its includes. Its absence words
    are its own, its includes', and the brand names of the RxNorm ingredients it holds (from
    the product table's branded products), which name the medicine in free text as well as the
    ingredient's display does."""
    compiled: dict[str, CompiledValueSet] = {}
    descendants = descendants or {}

    def expand(
        vs_id: str, stack: tuple[str, ...]
    ) -> tuple[set[tuple[str, str]], set[tuple[str, str]], dict[tuple[str, str], str], set[str]]:
        vs = files[vs_id]
        words = {word.strip().lower() for word in vs.absence_words if word.strip()}
        codes: set[tuple[str, str]] = set()
        prefixes: set[tuple[str, str]] = set()
        displays: dict[tuple[str, str], str] = {}
        for index, entry in enumerate(vs.codes):
            system = canonical_system(entry.system) or entry.system
            if not system.startswith(("http://", "https://", "urn:")):
                problems.add(
                    folder / f"{vs_id}.yaml",
                    f"codes.{index}.system: {entry.system!r} is neither a code system URI nor "
                    f"one of {', '.join(SYSTEM_SHORTHANDS)}",
                )
                continue
            code = normalize_code(system, entry.code)
            if code is None:
                problems.add(
                    folder / f"{vs_id}.yaml", f"codes.{index}.code: unusable code {entry.code!r}"
                )
                continue
            codes.add((system, code))
            displays[(system, code)] = entry.display
        for index, entry in enumerate(vs.descendants_of):
            if canonical_system(entry.system) != SNOMED:
                problems.add(
                    folder / f"{vs_id}.yaml",
                    f"descendants_of.{index}.system: only SNOMED CT concepts have descendants",
                )
                continue
            if entry.code not in descendants:
                problems.add(
                    folder / f"{vs_id}.yaml",
                    f"descendants_of.{index}: no expansion of {entry.code} in "
                    "knowledge/terminology/snomed-descendants.yaml (run python -m "
                    "cds.kb.snomed_expansion) or the site's terminology folder",
                )
            codes.add((SNOMED, entry.code))
            displays[(SNOMED, entry.code)] = entry.display
            members, _origin = descendants.get(entry.code, ({}, ""))
            for code, display in members.items():
                codes.add((SNOMED, code))
                displays.setdefault((SNOMED, code), display)
        for family in vs.families:
            prefix = normalize_code(family.system_uri, family.prefix)
            if prefix:
                prefixes.add((family.system_uri, prefix))
                displays[(family.system_uri, prefix)] = family.display
        for included in vs.include:
            if included not in files:
                problems.add(folder / f"{vs_id}.yaml", f"include: unknown value set {included!r}")
            elif included in stack:
                problems.add(folder / f"{vs_id}.yaml", f"include: cycle through {included!r}")
            else:
                c, p, d, w = expand(included, (*stack, included))
                codes |= c
                prefixes |= p
                displays.update(d)
                words |= w
        return codes, prefixes, displays, words

    brands = brands or {}
    for vs_id, vs in files.items():
        codes, prefixes, displays, words = expand(vs_id, (vs_id,))
        branded = {
            name for system, code in codes if system == RXNORM for name in brands.get(code, ())
        }
        compiled[vs_id] = CompiledValueSet(
            id=vs_id,
            title=vs.title,
            codes=frozenset(codes),
            prefixes=frozenset(prefixes),
            displays=displays,
            absence_words=frozenset(words | branded),
        )
    return compiled


# RxNorm names a branded product's brand last, in brackets: "letrozole 2.5 MG Oral Tablet [Femara]".
_BRAND = re.compile(r"\[([^\[\]]+)\]\s*$")


def _load_ingredients(
    path: Path, problems: _Problems
) -> tuple[dict[str, tuple[str, ...]], dict[str, set[str]]]:
    """The product table: product -> its ingredients, and ingredient -> the brand names of its
    branded products (lower case)."""
    out: dict[str, tuple[str, ...]] = {}
    brands: dict[str, set[str]] = {}
    if not path.exists():
        return out, brands
    data = _read_yaml(path, problems)
    if not isinstance(data, dict) or not isinstance(data.get("products"), dict):
        problems.add(path, "expected 'products: {<rxcui>: [tty, [ingredients], [sources], name]}'")
        return out, brands
    for product, entry in data["products"].items():
        # A generated row is [tty, [ingredients], [sources], name]; a hand-written one may be
        # a mapping {display, ingredients}.
        name: Any = None
        if isinstance(entry, list) and len(entry) == 4:
            ingredients, name = entry[1], entry[3]
        else:
            ingredients = entry.get("ingredients") if isinstance(entry, dict) else None
        if not isinstance(ingredients, list):
            problems.add(path, f"products.{product}: needs an ingredients list")
            continue
        out[str(product)] = tuple(str(i) for i in ingredients)
        brand = _BRAND.search(name) if isinstance(name, str) else None
        if brand is not None:
            for ingredient in out[str(product)]:
                brands.setdefault(ingredient, set()).add(brand.group(1).strip().lower())
    return out, brands


def _load_override_reasons(path: Path, problems: _Problems) -> dict[str, OverrideReasonSpec]:
    data = _read_yaml(path, problems)
    out: dict[str, OverrideReasonSpec] = {}
    if not isinstance(data, dict) or not isinstance(data.get("reasons"), list):
        problems.add(path, "expected 'reasons: [...]'")
        return out
    for index, entry in enumerate(data["reasons"]):
        parsed = problems.parse(path, OverrideReasonSpec, entry, f"reasons.{index}")
        if parsed is not None:
            if parsed.code in out:
                problems.add(path, f"reasons.{index}: duplicate code {parsed.code!r}")
            out[parsed.code] = parsed
    return out


def _load_education(folder: Path, problems: _Problems) -> dict[str, EducationPage]:
    out: dict[str, EducationPage] = {}
    for path in sorted(folder.glob("*.md")):
        text = path.read_text(encoding="utf-8")
        match = _FRONT_MATTER.match(text)
        if not match:
            problems.add(path, "needs a YAML front matter block between '---' lines")
            continue
        try:
            meta = load_yaml_text(match.group(1))
        except yaml.YAMLError as exc:
            problems.add(path, f"front matter: {exc}")
            continue
        if not isinstance(meta, dict):
            problems.add(path, "front matter must be a mapping")
            continue
        parsed = problems.parse(
            path, EducationPage, {**meta, "slug": path.stem, "body": match.group(2)}
        )
        if parsed is not None:
            out[parsed.slug] = parsed
    return out


def _load_definitions(path: Path, problems: _Problems) -> dict[str, Definition]:
    data = _read_yaml(path, problems)
    out: dict[str, Definition] = {}
    if not isinstance(data, dict):
        problems.add(path, "expected a mapping of name -> {description, logic}")
        return out
    for name, entry in data.items():
        parsed = problems.parse(path, Definition, entry, str(name))
        if parsed is not None:
            out[str(name)] = parsed
    return out


def _load_rules(folder: Path, problems: _Problems) -> tuple[dict[str, Rule], dict[str, Path]]:
    rules: dict[str, Rule] = {}
    files: dict[str, Path] = {}
    for path in sorted(folder.glob("*.yaml")):
        if path.name.endswith(".cases.yaml"):
            continue
        data = _read_yaml(path, problems)
        if not isinstance(data, dict):
            problems.add(path, "expected a mapping")
            continue
        rule = problems.parse(path, Rule, data)
        if rule is None:
            continue
        if rule.id != path.stem:
            problems.add(path, f"id: {rule.id!r} must equal the file name {path.stem!r}")
        if rule.id in rules:
            problems.add(path, f"id: duplicate rule id {rule.id!r}")
        rules[rule.id] = rule
        files[rule.id] = path
    return rules, files


def _load_fixtures(path: Path, problems: _Problems) -> dict[str, dict[str, Any]]:
    if not path.exists():
        return {}
    data = _read_yaml(path, problems)
    if not isinstance(data, dict):
        problems.add(path, "expected a mapping of fixture name -> FHIR resource")
        return {}
    out: dict[str, dict[str, Any]] = {}
    for name, resource in data.items():
        if not isinstance(resource, dict) or "resourceType" not in resource:
            problems.add(path, f"{name}: a fixture is one FHIR resource with resourceType")
            continue
        out[str(name)] = resource
    return out


def _load_cases(folder: Path, problems: _Problems) -> dict[str, tuple[Case, ...]]:
    out: dict[str, tuple[Case, ...]] = {}
    for path in sorted(folder.glob("*.cases.yaml")):
        data = _read_yaml(path, problems)
        if not isinstance(data, list):
            problems.add(path, "expected a list of cases")
            continue
        cases = []
        names: set[str] = set()
        for index, entry in enumerate(data):
            case = problems.parse(path, Case, entry, str(index))
            if case is None:
                continue
            if case.name in names:
                problems.add(path, f"{index}.name: duplicate case name {case.name!r}")
            names.add(case.name)
            cases.append(case)
        out[path.name.removesuffix(".cases.yaml")] = tuple(cases)
    return out


def _depends_on(node: Node) -> list[str]:
    """Definitions a node needs: the ones it references and the ones its anchors name."""
    names: list[str] = []
    for sub in walk([node]):
        if sub.ref is not None:
            names.append(sub.ref)
        fact = sub.fact()
        if fact is not None:
            names += [a.name for a in (fact[1].after, fact[1].before) if a is not None]
    return names


def _definition_cycles(definitions: dict[str, Node]) -> list[list[str]]:
    """Each cycle among definitions once, as the path that closes it (``a -> b -> a``)."""
    graph = {
        name: [d for d in _depends_on(node) if d in definitions]
        for name, node in definitions.items()
    }
    state: dict[str, int] = {}  # 1 on the current path, 2 finished
    cycles: list[list[str]] = []

    def visit(name: str, path: list[str]) -> None:
        state[name] = 1
        for dep in graph[name]:
            if state.get(dep) == 1:
                cycles.append([*path[path.index(dep) :], dep])
            elif dep not in state:
                visit(dep, [*path, dep])
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            visit(name, [name])
    return cycles


def _check_references(
    problems: _Problems,
    *,
    rules: dict[str, Rule],
    rule_files: dict[str, Path],
    definitions: dict[str, Node],
    valuesets: dict[str, CompiledValueSet],
    templates: dict[str, CardTemplate],
    education: dict[str, EducationPage],
    override_reasons: dict[str, OverrideReasonSpec],
    source: SourceDocument | None,
    knowledge_dir: Path,
    education_dir: Path,
) -> None:
    headings = {s.heading for s in source.sections} if source else set()
    status_kinds = " and ".join(k.name for k in KINDS.values() if k.takes_status)
    value_kinds = " and ".join(f"{k.name}s" for k in KINDS.values() if k.value_tests)

    def check_node(path: Path, where: str, node: Node) -> None:
        for sub in walk([node]):
            if sub.ref is not None and sub.ref not in definitions:
                problems.add(path, f"{where}: unknown definition {sub.ref!r}")
            fact = sub.fact()
            if fact is None:
                continue
            kind, query = fact
            spec = KINDS[kind]
            if query.valueset is None and spec.needs_valueset:
                problems.add(path, f"{where}: a {kind} fact needs a valueset")
            if query.status is not None and not spec.takes_status:
                problems.add(
                    path,
                    f"{where}.{kind}.status: only {status_kinds} facts take a status "
                    "(other kinds always apply their fixed filter)",
                )
            for vs in query.valuesets():
                if vs not in valuesets:
                    problems.add(path, f"{where}: unknown value set {vs!r}")
            for anchor in (query.after, query.before):
                if anchor is not None and anchor.name not in definitions:
                    problems.add(path, f"{where}: anchor names unknown definition {anchor.name!r}")
            if (
                query.value or query.interpretation or query.component_tests() or query.trend
            ) and not spec.value_tests:
                problems.add(
                    path,
                    f"{where}: value, interpretation, component and trend "
                    f"apply to {value_kinds} only",
                )

    defs_path = knowledge_dir / "definitions.yaml"
    for name, node in definitions.items():
        check_node(defs_path, f"{name}.logic", node)
    for cycle in _definition_cycles(definitions):
        problems.add(defs_path, f"{cycle[0]}.logic: definition cycle {' -> '.join(cycle)}")

    for rule_id, rule in rules.items():
        path = rule_files[rule_id]
        for index, node in enumerate(rule.logic.inclusion):
            check_node(path, f"logic.inclusion.{index}", node)
        for index, node in enumerate(rule.logic.exclusion):
            check_node(path, f"logic.exclusion.{index}", node)
        template = templates.get(rule.card.template)
        if template is None:
            problems.add(path, f"card.template: unknown card template {rule.card.template!r}")
        for slug in rule.card.education:
            if slug not in education:
                problems.add(path, f"card.education: unknown education page {slug!r}")
        for code in rule.override_reasons:
            if code not in override_reasons:
                problems.add(path, f"override_reasons: unknown reason {code!r}")
        if source is not None and rule.source.document != source.id:
            problems.add(path, f"source.document: unknown document {rule.source.document!r}")
        if headings and rule.source.section not in headings:
            problems.add(
                path,
                f"source.section: {rule.source.section!r} is not a heading of the source document",
            )
        seen_ids: set[str] = set()
        for index, suggestion in enumerate(rule.suggestions):
            if suggestion.id in seen_ids:
                problems.add(path, f"suggestions.{index}.id: duplicate {suggestion.id!r}")
            seen_ids.add(suggestion.id)
            for message in check_suggestion_resource(suggestion.resource):
                problems.add(path, f"suggestions.{index}.resource: {message}")
            try:
                linked = education_placeholders(suggestion.resource)
            except ValueError:
                linked = []  # reported by check_suggestion_resource
            for slug in linked:
                if slug not in education:
                    problems.add(
                        path, f"suggestions.{index}.resource: unknown education page {slug!r}"
                    )

    for slug, page in education.items():
        page_path = education_dir / f"{slug}.md"
        for section in page.sections:
            if headings and section not in headings:
                problems.add(
                    page_path,
                    f"sections: {section!r} is not a heading of the source document",
                )
        page_headings = set(re.findall(r"^#{2,4} +(.+?) *$", page.body, flags=re.MULTILINE))
        for heading in page.beyond_source:
            if heading not in page_headings:
                problems.add(page_path, f"beyond_source: {heading!r} is not a heading of the page")


def _check_cases(
    problems: _Problems,
    *,
    cases: dict[str, tuple[Case, ...]],
    rules: dict[str, Rule],
    fixtures: dict[str, dict[str, Any]],
    definitions: dict[str, Node],
    valuesets: dict[str, CompiledValueSet],
    folder: Path,
) -> None:
    """A case must be runnable as written: a case that cannot fail is worse than none."""
    for name, case_list in cases.items():
        path = folder / f"{name}.cases.yaml"
        rule = rules.get(name)
        if rule is None:
            problems.add(path, "no rule with this id")
            continue
        for index, case in enumerate(case_list):
            where = f"{index} ({case.name})"
            for fixture in case.fixtures:
                if fixture not in fixtures:
                    problems.add(path, f"{where}.fixtures: unknown fixture {fixture!r}")
            hook = case.hook or rule.hooks[0]
            if hook not in rule.hooks:
                problems.add(path, f"{where}.hook: the rule does not run on {hook!r}")
                continue
            if not (case.null_prefetch or case.omit_prefetch):
                continue
            try:
                keys = {k.name for k in plan_prefetch(hook, [rule], definitions, valuesets).keys}
            except KeyError:
                continue  # an unknown value set, already reported against the rule
            for field_name, names in (
                ("null_prefetch", case.null_prefetch),
                ("omit_prefetch", case.omit_prefetch),
            ):
                for key in names:
                    if key not in keys:
                        problems.add(
                            path,
                            f"{where}.{field_name}: {key!r} is not a prefetch key of this rule "
                            f"(keys: {', '.join(sorted(keys))})",
                        )


def _load_services(
    path: Path,
    rules: dict[str, Rule],
    definitions: dict[str, Node],
    valuesets: dict[str, CompiledValueSet],
    problems: _Problems,
) -> dict[str, Service]:
    data = _read_yaml(path, problems)
    out: dict[str, Service] = {}
    if not isinstance(data, dict) or not isinstance(data.get("services"), list):
        problems.add(path, "expected 'services: [...]'")
        return out
    for index, entry in enumerate(data["services"]):
        spec = problems.parse(path, ServiceSpec, entry, f"services.{index}")
        if spec is None:
            continue
        if spec.hook not in HOOKS:
            problems.add(
                path,
                f"services.{index}.hook: unknown hook {spec.hook!r}; known: {', '.join(HOOKS)}",
            )
            continue
        if spec.id in out:
            problems.add(path, f"services.{index}.id: duplicate service id {spec.id!r}")
        service_rules = []
        for rule_id in spec.rules:
            rule = rules.get(rule_id)
            if rule is None:
                problems.add(path, f"services.{index}.rules: unknown rule {rule_id!r}")
            elif spec.hook not in rule.hooks:
                problems.add(
                    path, f"services.{index}.rules: rule {rule_id!r} does not run on {spec.hook}"
                )
            elif rule.status != "retired":
                service_rules.append(rule)
        try:
            plan = plan_prefetch(spec.hook, service_rules, definitions, valuesets)
        except (KeyError, RecursionError) as exc:
            problems.add(path, f"services.{index}: cannot derive prefetch ({exc})")
            continue
        out[spec.id] = Service(spec=spec, rules=tuple(service_rules), prefetch=plan)
    return out
