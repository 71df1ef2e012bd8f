"""Build a site's complete RxNorm product table from an RxNorm release (``cds terminology
import rxnorm DIR``).

The shipped table (``knowledge/terminology/rxnorm-ingredients.yaml``) holds only the products
public extracts offer. A site with an RxNorm release (free with a UMLS licence) can write the
complete table for the ingredients the knowledge names: every SCD, SBD, GPCK, BPCK, SCDG and
SBDG that contains one of them. The service merges the site table over the shipped one when
``CDS_TERMINOLOGY_DIR`` names the folder.

The walk follows RxNorm's relationships by term type, in whichever direction a release's
RXNREL rows state them: ingredient (IN) - component (SCDC) - clinical drug (SCD) - branded
drug (SBD), and from the drugs to their packs (GPCK, BPCK) and dose form groups (SCDG, SBDG).
Products with several ingredients (a multiple-ingredient concept, MIN) also map to that MIN.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterator
from pathlib import Path

from cds.errors import TerminologyImportError
from cds.kb.product_table import Product, render_table

__all__ = ["find_rrf", "import_rxnorm"]

_PRODUCT_TTYS = ("SCD", "SBD", "GPCK", "BPCK", "SCDG", "SBDG")
_KEPT_TTYS = frozenset({"IN", "MIN", "SCDC", *_PRODUCT_TTYS})
# (from term type, to term type): the relationship names that join them, either way round.
_HOPS: dict[tuple[str, str], frozenset[str]] = {
    ("IN", "SCDC"): frozenset({"has_ingredient", "ingredient_of"}),
    ("SCDC", "SCD"): frozenset({"consists_of", "constitutes"}),
    ("MIN", "SCD"): frozenset({"has_ingredients", "ingredients_of"}),
    ("SCD", "SBD"): frozenset({"has_tradename", "tradename_of"}),
    ("SCD", "GPCK"): frozenset({"contains", "contained_in"}),
    ("SCD", "BPCK"): frozenset({"contains", "contained_in"}),
    ("SBD", "BPCK"): frozenset({"contains", "contained_in"}),
    ("SCD", "SCDG"): frozenset({"isa", "inverse_isa"}),
    ("SBD", "SBDG"): frozenset({"isa", "inverse_isa"}),
}


def find_rrf(folder: Path, name: str) -> Path:
    """``name`` in ``folder`` or its ``rrf/`` subfolder (the release zip's layout)."""
    for candidate in (folder / name, folder / "rrf" / name):
        if candidate.is_file():
            return candidate
    raise TerminologyImportError(f"{folder}: no {name} (looked in the folder and in rrf/)")


def _fields(path: Path) -> Iterator[list[str]]:
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            yield line.rstrip("\n").split("|")


def import_rxnorm(folder: Path, ingredients: Collection[str]) -> tuple[str, int]:
    """The site table text for ``ingredients`` (IN or MIN RxCUIs), and its product count."""
    tty: dict[str, str] = {}
    names: dict[str, str] = {}
    for row in _fields(find_rrf(folder, "RXNCONSO.RRF")):
        if len(row) < 17 or row[11] != "RXNORM" or row[12] not in _KEPT_TTYS:
            continue
        if row[16] in ("O", "Y"):  # obsolete or suppressed names
            continue
        cui = row[0]
        tty.setdefault(cui, row[12])
        names.setdefault(cui, row[14])
    edges: dict[str, set[str]] = defaultdict(set)
    for row in _fields(find_rrf(folder, "RXNREL.RRF")):
        if len(row) < 11 or row[10] != "RXNORM":
            continue
        a, b, rela = row[0], row[4], row[7]
        pair = (tty.get(a, ""), tty.get(b, ""))
        relas = _HOPS.get(pair) or _HOPS.get((pair[1], pair[0])) or frozenset()
        if rela in relas:
            edges[a].add(b)
            edges[b].add(a)
    if not tty:
        raise TerminologyImportError(f"{folder}: RXNCONSO.RRF holds no RxNorm concepts")

    found: dict[str, set[str]] = defaultdict(set)

    def reach(start: str, path: tuple[str, ...]) -> Iterator[str]:
        """Concepts reached from ``start`` through term types ``path``, one hop each."""
        frontier = {start}
        for step in path:
            frontier = {n for c in frontier for n in edges[c] if tty.get(n) == step}
        yield from frontier

    for ingredient in ingredients:
        kind = tty.get(ingredient)
        if kind == "IN":
            drugs = set(reach(ingredient, ("SCDC", "SCD")))
        elif kind == "MIN":
            drugs = set(reach(ingredient, ("SCD",)))
        else:
            continue
        branded = {b for d in drugs for b in reach(d, ("SBD",))}
        products = drugs | branded
        for step in ("GPCK", "BPCK", "SCDG"):
            products |= {p for d in drugs for p in reach(d, (step,))}
        for step in ("BPCK", "SBDG"):
            products |= {p for b in branded for p in reach(b, (step,))}
        for product in products:
            found[product].add(ingredient)

    table = {
        cui: Product(
            cui, names.get(cui, ""), tty[cui], tuple(sorted(found[cui], key=int)), ["site-rxnorm"]
        )
        for cui in sorted(found, key=int)
    }
    origin = f"`cds terminology import rxnorm` from the RxNorm release in {folder.name}"
    return render_table(table, origin), len(table)
