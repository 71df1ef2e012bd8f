"""Generate the RxNorm product -> ingredient table from checked-in public extracts.

``knowledge/terminology/rxnorm-ingredients.yaml`` is generated, never edited: this module reads
the extracts in ``knowledge/terminology/sources/`` (each with a header naming its repository,
commit, path and licence) and writes the table. Run ``python -m cds.kb.product_table`` after
changing an extract or a value set's RxNorm ingredients; a test fails when the checked-in table
differs from what this writes.

How a product's ingredients are found: RxNorm names clinical drugs and their components
normatively, "<ingredient> <strength> <unit> [/ <ingredient> <strength> <unit>] <dose form>
[<brand>]", with the precise ingredient (a salt such as "oxycodone hydrochloride") in place of
the ingredient where the strength is stated for the salt. A product maps to an ingredient of
``sources/ingredients.tsv`` when one of its components' substance is that ingredient's RxNorm
name, or that name followed by salt words. The sandbox extract keeps each product's component
names (SCDC) as RxNorm lists them; the Synthea and public value set extracts keep the product
name only.

``--extract-sandbox FILE`` refreshes the sandbox extract from a copy of the CDS Hooks Sandbox's
``src/assets/medication-list.js`` (give ``--commit``); nothing else here needs the network.
"""

from __future__ import annotations

import argparse
import ast
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "Ingredient",
    "Product",
    "build_products",
    "extract_rows",
    "ingredients_of",
    "main",
    "read_ingredients",
    "render_table",
    "substances",
    "yaml_quote",
]

_REPO_ROOT = Path(__file__).resolve().parents[2]
TERMINOLOGY = _REPO_ROOT / "knowledge" / "terminology"
SOURCES = TERMINOLOGY / "sources"
TABLE = TERMINOLOGY / "rxnorm-ingredients.yaml"

# A leading quantity ("10 ML", "12 HR", "0.4 ML") and the first token that starts a strength.
_LEADING_QUANTITY = re.compile(r"^(?:[\d.,]+ [A-Za-z]+ )+")
_STRENGTH = re.compile(r"\s[\d.,]+(?:\s|$)")
_BRAND = re.compile(r"\s*\[[^\]]*\]\s*$")


@dataclass(frozen=True)
class Ingredient:
    rxcui: str
    name: str  # the RxNorm ingredient name, lower case; empty when no public source gives it
    tty: str  # IN or MIN
    confirmed_by: str


@dataclass
class Product:
    rxcui: str
    name: str
    tty: str
    ingredients: tuple[str, ...]
    sources: list[str] = field(default_factory=list)


def extract_rows(path: Path) -> Iterable[list[str]]:
    """Tab-separated rows of an extract in sources/ (RxNorm's and SNOMED CT's); '#' lines are
    its header, the first row its columns."""
    lines = [
        line for line in path.read_text(encoding="utf-8").splitlines() if not line.startswith("#")
    ]
    for line in lines[1:]:
        if line.strip():
            yield line.split("\t")


def read_ingredients(path: Path = SOURCES / "ingredients.tsv") -> dict[str, Ingredient]:
    out: dict[str, Ingredient] = {}
    for rxcui, name, tty, confirmed_by in extract_rows(path):
        out[rxcui] = Ingredient(rxcui, name.strip().lower(), tty, confirmed_by)
    return out


def substances(name: str) -> list[str]:
    """The substance of each component of an RxNorm drug or component name, lower case:
    "Acetaminophen 325 MG / oxyCODONE Hydrochloride 5 MG Oral Tablet [Percocet]" gives
    ["acetaminophen", "oxycodone hydrochloride"]."""
    name = _BRAND.sub("", name)
    out = []
    for part in name.split(" / "):
        part = _LEADING_QUANTITY.sub("", part.strip())
        match = _STRENGTH.search(part)
        substance = part[: match.start()] if match else part
        out.append(substance.strip().lower())
    return [s for s in out if s]


def ingredients_of(names: Sequence[str], by_name: dict[str, str]) -> tuple[str, ...]:
    """Ingredient RxCUIs of the given substances (IN names, or IN name plus salt words)."""
    found: list[str] = []
    for substance in names:
        for name, rxcui in by_name.items():
            if substance == name or substance.startswith(name + " "):
                if rxcui not in found:
                    found.append(rxcui)
                break
    return tuple(sorted(found, key=int))


def _tty_of(name: str, kind: str, parts: Sequence[str] = ()) -> str:
    """SCD/SBD by the brand in brackets; a pill group is an SCDG when its name lists its
    components' substances ("Tamoxifen Pill") and an SBDG when it is a brand ("Amrix Pill")."""
    if kind == "group":
        named = name.removesuffix(" Pill").lower().split(" / ")
        listed = all(any(p == n or p.startswith(n + " ") for p in parts) for n in named)
        return "SCDG" if listed else "SBDG"
    return "SBD" if _BRAND.search(name) else "SCD"


def build_products(sources: Path = SOURCES) -> dict[str, Product]:
    """Every product of every ingredient in ``ingredients.tsv`` that an extract offers."""
    ingredients = read_ingredients(sources / "ingredients.tsv")
    # Longest names first, so that "trastuzumab deruxtecan" is tried before "trastuzumab".
    by_name = {
        i.name: i.rxcui
        for i in sorted(ingredients.values(), key=lambda i: -len(i.name))
        if i.name and i.tty == "IN"
    }
    products: dict[str, Product] = {}

    def add(rxcui: str, name: str, tty: str, found: tuple[str, ...], source: str) -> None:
        if not found:
            return
        known = products.get(rxcui)
        if known is None:
            products[rxcui] = Product(rxcui, name, tty, found, [source])
            return
        if set(known.ingredients) != set(found):
            raise ValueError(
                f"{rxcui}: {source} gives ingredients {found}, "
                f"{', '.join(known.sources)} gave {known.ingredients}"
            )
        if source not in known.sources:
            known.sources.append(source)

    for rxcui, kind, name, components in extract_rows(sources / "cds-hooks-sandbox.tsv"):
        parts = [s for c in components.split(" | ") for s in substances(c)]
        tty = _tty_of(name, kind, parts)
        add(rxcui, name, tty, ingredients_of(parts, by_name), "cds-hooks-sandbox")
    for rxcui, name, _module in extract_rows(sources / "synthea-breast-cancer.tsv"):
        found = ingredients_of(substances(name), by_name)
        add(rxcui, name, _tty_of(name, "product"), found, "synthea")
    for rxcui, tty, name, listed, source in extract_rows(sources / "curated.tsv"):
        found = tuple(i for i in listed.split(",") if i in ingredients)
        add(rxcui, name, tty, tuple(sorted(found, key=int)), source)
    for rxcui, name, source in extract_rows(sources / "public-valuesets.tsv"):
        found = ingredients_of(substances(name), by_name)
        add(rxcui, name, _tty_of(name, "product"), found, source)
    return dict(sorted(products.items(), key=lambda item: int(item[0])))


def yaml_quote(text: str) -> str:
    """``text`` as a double-quoted YAML scalar."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


_ORIGIN = "`python -m cds.kb.product_table` from knowledge/terminology/sources/"


def render_table(products: dict[str, Product], origin: str = _ORIGIN) -> str:
    header = [
        f"# GENERATED by {origin};",
        "# do not edit. RxNorm product -> ingredient table, read by cds/kb/loader.py: orders and",
        "# medication records carry product codes (SCD, SBD, SCDG, SBDG, GPCK, BPCK); value sets",
        "# list ingredients (IN). Each row: <product rxcui>: [term type, [ingredient rxcuis],",
        "# [sources], RxNorm name]. The ingredients are those of sources/ingredients.tsv the",
        "# product holds; the sources name the extract(s) the row comes from. (Rows are sequences,",
        "# not mappings: they load three times faster.)",
        f"# {len(products)} products.",
        "products:",
    ]
    rows = [
        f'  "{p.rxcui}": [{p.tty}, [{", ".join(yaml_quote(i) for i in p.ingredients)}], '
        f"[{', '.join(p.sources)}], {yaml_quote(p.name)}]"
        for p in products.values()
    ]
    return "\n".join([*header, *rows]) + "\n"


# --- refreshing the sandbox extract (needs a copy of the sandbox's medication list) ----------


def _parse_medication_list(text: str) -> dict[str, dict[str, Any]]:
    body = text.replace("const rxnorm = ", "").replace("export default rxnorm;", "").strip()
    body = re.sub(r"^(\s*)([A-Za-z]+|\d+):", r'\1"\2":', body.rstrip(";"), flags=re.MULTILINE)
    parsed: dict[str, dict[str, Any]] = ast.literal_eval(body)
    return parsed


def extract_sandbox(text: str, ingredients: dict[str, Ingredient]) -> list[tuple[str, ...]]:
    """Rows (rxcui, kind, name, component names) of the sandbox's prescribable products and
    pill groups that contain one of ``ingredients``."""
    data = _parse_medication_list(text)
    names = {str(k): str(v) for k, v in data["cuiToName"].items()}
    by_name = {i.name: i.rxcui for i in ingredients.values() if i.name and i.tty == "IN"}
    rows: dict[str, tuple[str, ...]] = {}

    def components(cuis: Iterable[str]) -> list[str]:
        return [names.get(c, "") for c in cuis]

    to_products: dict[str, list[str]] = data["componentSetsToPrescribables"]
    for key, product_cuis in to_products.items():
        parts = components(str(key).split(","))
        if not ingredients_of([s for p in parts for s in substances(p)], by_name):
            continue
        for cui in product_cuis:
            if str(cui) in names:
                rows[str(cui)] = (str(cui), "product", names[str(cui)], " | ".join(parts))
    to_sets: dict[str, list[list[str]]] = data["pillToComponentSets"]
    for pill, sets in to_sets.items():
        parts = sorted({n for s in sets for n in components(str(c) for c in s)})
        if str(pill) in names and ingredients_of(
            [s for p in parts for s in substances(p)], by_name
        ):
            rows[str(pill)] = (str(pill), "group", names[str(pill)], " | ".join(parts))
    return [rows[k] for k in sorted(rows, key=int)]


_SANDBOX_HEADER = """\
# Extract of the CDS Hooks Sandbox's drug list: every prescribable product (and pill group) in it
# that contains an ingredient of ingredients.tsv, with the RxNorm names of its components (SCDC).
# repository: https://github.com/cds-hooks/sandbox
# commit: {commit}
# path: src/assets/medication-list.js (cuiToName, pillToComponentSets,
#       componentSetsToPrescribables)
# licence: Apache-2.0 (the sandbox); the RxNorm names and codes are NLM's, free to use
# refresh: python -m cds.kb.product_table --extract-sandbox medication-list.js --commit <sha>
"""


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cds.kb.product_table", description=__doc__)
    parser.add_argument("--extract-sandbox", type=Path, help="medication-list.js to extract")
    parser.add_argument("--commit", default="unknown", help="the sandbox commit it came from")
    parser.add_argument("--check", action="store_true", help="exit 1 if the table is stale")
    args = parser.parse_args(argv)
    if args.extract_sandbox:
        rows = extract_sandbox(args.extract_sandbox.read_text(encoding="utf-8"), read_ingredients())
        lines = ["rxcui\tkind\tname\tcomponents", *("\t".join(r) for r in rows)]
        text = _SANDBOX_HEADER.format(commit=args.commit) + "\n".join(lines) + "\n"
        (SOURCES / "cds-hooks-sandbox.tsv").write_text(text, encoding="utf-8")
    table = render_table(build_products())
    if args.check:
        return 0 if TABLE.read_text(encoding="utf-8") == table else 1
    TABLE.write_text(table, encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
