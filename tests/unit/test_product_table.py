"""The generated RxNorm product table: reproducible from its extracts, and complete for the
ingredients the value sets name (see cds/kb/product_table.py)."""

from __future__ import annotations

import pytest

from cds.kb.product_table import (
    SOURCES,
    TABLE,
    build_products,
    extract_rows,
    ingredients_of,
    read_ingredients,
    render_table,
    substances,
)
from cds.strict_yaml import load_yaml_text
from tests.conftest import REPO

# Value-set ingredients no product of the extracts names. The table maps a product to the
# ingredient its RxNorm name names: the two multiple ingredients (MIN) with hyaluronidase are
# named by no product (Herceptin Hylecta is listed under trastuzumab; Phesgo names only the
# suffixed "-zzxf" substances), and Enhertu's clinical drug names "fam-trastuzumab
# deruxtecan-nxki", not "trastuzumab deruxtecan". These match when coded at ingredient level,
# or through a site's RxNorm import (`cds terminology import rxnorm`).
KNOWN_GAPS = {
    "2119713": "hyaluronidase / trastuzumab (a multiple ingredient)",
    "2382603": "hyaluronidase / pertuzumab / trastuzumab (a multiple ingredient)",
    "2267582": "trastuzumab deruxtecan (its product names fam-trastuzumab deruxtecan-nxki)",
}


def _valueset_ingredients() -> set[str]:
    """The RxNorm codes value sets list, less the products (a value set may name one product,
    such as the denosumab 60 mg syringe of denosumab-osteoporosis-dose)."""
    codes = set()
    for path in (REPO / "knowledge" / "valuesets").glob("*.yaml"):
        data = load_yaml_text(path.read_text(encoding="utf-8"))
        codes |= {str(c["code"]) for c in data.get("codes", ()) if c["system"] == "rxnorm"}
    return codes - set(build_products())


def test_the_checked_in_table_is_what_the_generator_writes() -> None:
    assert TABLE.read_text(encoding="utf-8") == render_table(build_products()), (
        "knowledge/terminology/rxnorm-ingredients.yaml is stale: run python -m cds.kb.product_table"
    )


def test_every_valueset_ingredient_is_in_the_ingredient_list() -> None:
    missing = _valueset_ingredients() - set(read_ingredients())
    assert not missing, f"add these to {SOURCES / 'ingredients.tsv'}: {sorted(missing)}"


def test_every_valueset_ingredient_has_products_or_is_a_named_gap() -> None:
    covered = {i for p in build_products().values() for i in p.ingredients}
    without = _valueset_ingredients() - covered
    assert without == set(KNOWN_GAPS), (
        f"without products and not a known gap: {sorted(without - set(KNOWN_GAPS))}; "
        f"known gaps that now have products: {sorted(set(KNOWN_GAPS) - without)}"
    )


def test_every_product_cites_a_source_and_a_product_term_type() -> None:
    for product in build_products().values():
        assert product.sources, product
        assert product.tty in {"SCD", "SBD", "SCDG", "SBDG", "GPCK", "BPCK"}, product


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("tamoxifen 10 MG Oral Tablet", ["tamoxifen"]),
        (
            "Acetaminophen 325 MG / oxyCODONE Hydrochloride 5 MG Oral Tablet [Percocet]",
            ["acetaminophen", "oxycodone hydrochloride"],
        ),
        ("10 ML Doxorubicin Hydrochloride 2 MG/ML Injection", ["doxorubicin hydrochloride"]),
        ("72 HR Fentanyl 0.025 MG/HR Transdermal System", ["fentanyl"]),
        ("Tamoxifen 20 MG", ["tamoxifen"]),
    ],
)
def test_substances_are_read_from_rxnorm_names(name: str, expected: list[str]) -> None:
    assert substances(name) == expected


def test_a_salt_matches_its_ingredient_and_a_longer_name_does_not() -> None:
    names = {"morphine": "7052", "prednisolone": "8638", "trastuzumab": "224905"}
    assert ingredients_of(["morphine sulfate"], names) == ("7052",)
    assert ingredients_of(["hydromorphone hydrochloride"], names) == ()
    assert ingredients_of(["methylprednisolone"], names) == ()
    assert ingredients_of(["trastuzumab-anns"], names) == ()


def test_the_sandbox_orders_the_issue_names_map_to_their_ingredients() -> None:
    products = build_products()
    assert products["672149"].ingredients == ("480167",)  # lapatinib 250 MG Oral Tablet
    assert products["200328"].ingredients == ("194000",)  # capecitabine 500 MG Oral Tablet
    assert products["313195"].ingredients == ("10324",)  # tamoxifen 20 MG Oral Tablet


def test_every_product_of_the_sandbox_extract_is_in_the_table() -> None:
    """The extract holds the sandbox's products of the value-set ingredients; none is dropped."""
    products = build_products()
    rows = list(extract_rows(SOURCES / "cds-hooks-sandbox.tsv"))
    assert len(rows) > 600
    missing = [(rxcui, name) for rxcui, _kind, name, _parts in rows if rxcui not in products]
    assert not missing, missing


def test_every_product_of_the_public_valueset_extract_is_in_the_table() -> None:
    """Each row of the value set extract names a value-set ingredient, so none may be dropped;
    a subcutaneous trastuzumab maps to trastuzumab, not to its hyaluronidase."""
    products = build_products()
    rows = list(extract_rows(SOURCES / "public-valuesets.tsv"))
    missing = [(rxcui, name) for rxcui, name, _source in rows if rxcui not in products]
    assert not missing, missing
    assert products["2119714"].ingredients == ("224905",)
    assert products["1045456"].ingredients == ("1045453",)  # eribulin mesylate
    assert products["2058863"].tty == "SBD"  # gemcitabine [Infugem]
    assert products["2174804"].ingredients == ("2174802",)  # trastuzumab-anns, not trastuzumab
    assert products["1658084"].ingredients == ("1371041",)  # ado-trastuzumab emtansine
