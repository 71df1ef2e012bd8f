"""`cds terminology import rxnorm`: a small RxNorm release written here, read into a site table
that the knowledge merges over the shipped one."""

from __future__ import annotations

from pathlib import Path

import pytest

from cds.cli import main
from cds.errors import KnowledgeError, TerminologyImportError
from cds.kb.loader import load_knowledge
from cds.kb.rxnorm_import import import_rxnorm
from cds.strict_yaml import load_yaml_text
from tests.conftest import REPO, shipped_knowledge

# (rxcui, tty, name, suppress)
_CONCEPTS = [
    ("10324", "IN", "tamoxifen", "N"),
    ("330520", "SCDC", "tamoxifen 10 MG", "N"),
    ("198240", "SCD", "tamoxifen 10 MG Oral Tablet", "N"),
    ("105630", "SBD", "tamoxifen 10 MG Oral Tablet [Nolvadex]", "N"),
    ("1164215", "SCDG", "Tamoxifen Pill", "N"),
    ("1168101", "SBDG", "Nolvadex Pill", "N"),
    ("9900001", "SCDC", "tamoxifen 2 MG/ML", "N"),
    ("9900002", "SCD", "tamoxifen 2 MG/ML Oral Solution", "N"),
    ("9900003", "GPCK", "{30 (tamoxifen 2 MG/ML Oral Solution) } Pack", "N"),
    ("9900004", "BPCK", "{30 (tamoxifen 10 MG Oral Tablet [Nolvadex]) } Pack [Nolvadex]", "N"),
    ("9900005", "SCD", "tamoxifen 5 MG Oral Tablet", "O"),  # obsolete: left out
    ("9900006", "SBD", "tamoxifen 2 MG/ML Oral Solution [Soltamox]", "N"),
    ("161", "IN", "acetaminophen", "N"),
    ("315266", "SCDC", "acetaminophen 500 MG", "N"),
    ("198440", "SCD", "acetaminophen 500 MG Oral Tablet", "N"),
    ("2119713", "MIN", "hyaluronidase-oysk / trastuzumab", "N"),
    ("2119717", "SCD", "hyaluronidase-oysk 10000 UNT / trastuzumab 600 MG Injection", "N"),
]
# (rxcui1, rela, rxcui2): stated in both directions, as releases differ in which they list.
_RELATIONS = [
    ("330520", "ingredient_of", "10324"),
    ("198240", "constitutes", "330520"),
    ("105630", "tradename_of", "198240"),
    ("198240", "isa", "1164215"),
    ("1168101", "inverse_isa", "105630"),
    ("10324", "has_ingredient", "9900001"),
    ("9900001", "consists_of", "9900002"),
    ("9900006", "tradename_of", "9900002"),
    ("9900002", "contained_in", "9900003"),
    ("105630", "contained_in", "9900004"),
    ("9900005", "consists_of", "330520"),
    ("315266", "ingredient_of", "161"),
    ("198440", "constitutes", "315266"),
    ("2119717", "ingredients_of", "2119713"),
]


def write_release(folder: Path) -> Path:
    rrf = folder / "rrf"
    rrf.mkdir(parents=True)
    conso = [
        f"{cui}|ENG||L1|PF|S1|Y|A{cui}|||{cui}|RXNORM|{tty}|{cui}|{name}||{suppress}|4096|"
        for cui, tty, name, suppress in _CONCEPTS
    ]
    conso.append("10324|ENG||L1|PF|S1|Y|B1|||X|MMSL|IN|X|tamoxifen (MMSL)||N||")
    (rrf / "RXNCONSO.RRF").write_text("\n".join(conso) + "\n", encoding="utf-8")
    rel = [f"{a}|A{a}|CUI|RO|{b}|A{b}|CUI|{rela}|R1||RXNORM||||N||" for a, rela, b in _RELATIONS]
    (rrf / "RXNREL.RRF").write_text("\n".join(rel) + "\n", encoding="utf-8")
    return folder


def _table(text: str) -> dict[str, list[object]]:
    """product -> [tty, [ingredients], [sources], name]"""
    products: dict[str, list[object]] = load_yaml_text(text)["products"]
    return products


def test_every_product_of_the_ingredient_is_written(tmp_path: Path) -> None:
    text, count = import_rxnorm(write_release(tmp_path / "rel"), {"10324", "2119713"})
    products = _table(text)
    tamoxifen = {
        "198240",
        "105630",
        "1164215",
        "1168101",
        "9900002",
        "9900003",
        "9900004",
        "9900006",
    }
    assert {c for c, p in products.items() if p[1] == ["10324"]} == tamoxifen
    assert products["2119717"][1] == ["2119713"]
    assert count == len(products) == 9
    assert "198440" not in products  # acetaminophen is no value-set ingredient here
    assert "9900005" not in products  # obsolete
    assert products["1168101"][0] == "SBDG"
    assert products["9900003"][2] == ["site-rxnorm"]
    assert products["198240"][3] == "tamoxifen 10 MG Oral Tablet"


def test_a_folder_without_the_release_files_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TerminologyImportError, match=r"RXNCONSO\.RRF"):
        import_rxnorm(tmp_path, {"10324"})


def test_the_command_writes_a_site_table_the_knowledge_merges(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    release = write_release(tmp_path / "rel")
    site = tmp_path / "site"
    assert main(["terminology", "import", "rxnorm", str(release), "--out", str(site)]) == 0
    assert "products" in capsys.readouterr().out
    shipped = shipped_knowledge()
    merged = load_knowledge(
        REPO / "knowledge", REPO / "cards", with_cases=False, site_terminology=site
    )
    assert "9900002" not in shipped.ingredients
    assert merged.ingredients["9900002"] == ("10324",)
    assert set(shipped.ingredients) - {"9900002"} <= set(merged.ingredients)
    # a brand of the site's table names the medicine in free text (honest absence only)
    assert "soltamox" not in shipped.valuesets["endocrine-therapy-agents"].absence_words
    assert "soltamox" in merged.valuesets["endocrine-therapy-agents"].absence_words


def test_the_command_needs_a_site_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("CDS_TERMINOLOGY_DIR", raising=False)
    release = write_release(tmp_path / "rel")
    assert main(["terminology", "import", "rxnorm", str(release)]) == 2
    assert "CDS_TERMINOLOGY_DIR" in capsys.readouterr().err


def test_a_missing_site_folder_is_a_knowledge_problem(tmp_path: Path) -> None:
    with pytest.raises(KnowledgeError, match="CDS_TERMINOLOGY_DIR is not a folder"):
        load_knowledge(
            REPO / "knowledge", REPO / "cards", with_cases=False, site_terminology=tmp_path / "no"
        )
