"""SNOMED CT descendants: the shipped expansion is what its generator writes, value sets that
name a concept under `descendants_of` hold its descendants, and `cds terminology import snomed`
expands from an RF2 release (a small one written here)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cds.cli import main
from cds.errors import TerminologyImportError
from cds.kb.code_systems import SNOMED
from cds.kb.loader import load_knowledge
from cds.kb.snomed_expansion import TABLE, import_snomed, keeps, shipped_text
from cds.strict_yaml import load_yaml_text
from tests.conftest import REPO, shipped_knowledge

_IS_A = "116680003"
_FSN = "900000000000003001"
_SYNONYM = "900000000000013009"
# (child, parent) IS-A relationships; a retired one ("0") is ignored.
_ISA = [
    ("372064008", "254837009"),  # malignant neoplasm of female breast
    ("9900000001", "372064008"),  # a made-up grandchild, only in this release
    ("448449001", "254837009"),  # sarcoma of female breast: left out by name
    ("9900000002", "254837009", "0"),  # retired relationship
    ("94222008", "128462008"),  # unrelated branch
]
_NAMES = {
    "254837009": "Malignant neoplasm of breast (disorder)",
    "372064008": "Malignant neoplasm of female breast (disorder)",
    "9900000001": "Malignant neoplasm of some new part of female breast (disorder)",
    "448449001": "Sarcoma of female breast (disorder)",
    "9900000002": "Retired kind of breast cancer (disorder)",
    "94222008": "Metastatic malignant neoplasm to bone (disorder)",
    "315004001": "Metastasis from malignant tumor of breast (disorder)",
}


def write_rf2(folder: Path) -> Path:
    terminology = folder / "Snapshot" / "Terminology"
    terminology.mkdir(parents=True)
    header = "id\teffectiveTime\tactive\tmoduleId\tsourceId\tdestinationId\trelationshipGroup"
    rows = [header + "\ttypeId\tcharacteristicTypeId\tmodifierId"]
    for n, (child, parent, *active) in enumerate(_ISA):
        flag = active[0] if active else "1"
        rows.append(f"{n}\t20250101\t{flag}\tm\t{child}\t{parent}\t0\t{_IS_A}\tc\tmod")
    (terminology / "sct2_Relationship_Snapshot_INT_20250101.txt").write_text(
        "\n".join(rows) + "\n", encoding="utf-8"
    )
    desc = ["id\teffectiveTime\tactive\tmoduleId\tconceptId\tlanguageCode\ttypeId\tterm\tcs"]
    for n, (code, name) in enumerate(_NAMES.items()):
        desc.append(f"d{n}\t20250101\t1\tm\t{code}\ten\t{_FSN}\t{name}\tcs")
        desc.append(f"s{n}\t20250101\t1\tm\t{code}\ten\t{_SYNONYM}\tsynonym {n}\tcs")
    (terminology / "sct2_Description_Snapshot-en_INT_20250101.txt").write_text(
        "\n".join(desc) + "\n", encoding="utf-8"
    )
    return folder


def test_the_shipped_expansion_is_what_the_generator_writes() -> None:
    assert TABLE.read_text(encoding="utf-8") == shipped_text(), (
        "knowledge/terminology/snomed-descendants.yaml is stale: "
        "run python -m cds.kb.snomed_expansion"
    )


def test_value_sets_hold_the_shipped_descendants() -> None:
    knowledge = shipped_knowledge()
    breast = knowledge.valuesets["breast-cancer-invasive"]
    for code in ("353511000119101", "188154003", "94117003", "315004001", "459391000124109"):
        assert (SNOMED, code) in breast.codes, code
    for code in ("448449001", "94297009", "278053004", "269497004"):
        assert (SNOMED, code) not in breast.codes, code
    assert "descendants of 254837009" in knowledge.valueset_sources["breast-cancer-invasive"]


def test_names_only_remove_kinds_the_knowledge_leaves_out() -> None:
    assert keeps("254837009", "Malignant neoplasm of upper-outer quadrant of female breast")
    assert not keeps("254837009", "Sarcoma of female breast (disorder)")
    assert not keeps("254837009", "Intraductal carcinoma in situ of breast")
    assert keeps("315004001", "Sarcoma of anything")  # no exclusions for this concept


def test_the_rf2_import_walks_is_a_and_leaves_out_the_same_kinds(tmp_path: Path) -> None:
    text, count = import_snomed(write_rf2(tmp_path / "rf2"), {"254837009", "315004001"})
    concepts = load_yaml_text(text)["concepts"]
    assert set(concepts["254837009"]["descendants"]) == {"372064008", "9900000001"}
    assert concepts["254837009"]["display"] == "Malignant neoplasm of breast"
    assert concepts["315004001"]["descendants"] == {}
    assert count == 2


def test_a_folder_without_rf2_files_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TerminologyImportError, match="sct2_Relationship_Snapshot"):
        import_snomed(tmp_path, {"254837009"})


def test_the_command_writes_a_site_expansion_the_knowledge_uses(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    release = write_rf2(tmp_path / "rf2")
    site = tmp_path / "site"
    assert main(["terminology", "import", "snomed", str(release), "--out", str(site)]) == 0
    assert "descendants" in capsys.readouterr().out
    knowledge = load_knowledge(
        REPO / "knowledge", REPO / "cards", with_cases=False, site_terminology=site
    )
    breast = knowledge.valuesets["breast-cancer-invasive"]
    assert (SNOMED, "9900000001") in breast.codes  # from the site's release
    # the site's expansion replaces the shipped one for each concept it holds
    assert (SNOMED, "353511000119101") not in breast.codes
    assert "(2, site)" in knowledge.valueset_sources["breast-cancer-invasive"]
