"""The `cds` command as a newcomer meets it: one-line errors, help, version, narrow output."""

from __future__ import annotations

import bz2
import gzip
from pathlib import Path
from typing import Any

import orjson
import pytest

from cds import __version__
from cds.call.request_builder import request_from_resources
from cds.cli import CHECK_WIDTH, main
from cds.errors import ConfigurationError, KnowledgeError
from tests.conftest import shipped_knowledge

PATIENT = {"resourceType": "Patient", "id": "p1", "gender": "female", "birthDate": "1960-01-01"}
BUNDLE = {"resourceType": "Bundle", "type": "collection", "entry": [{"resource": PATIENT}]}
REQUEST = {
    "hook": "patient-view",
    "hookInstance": "d1577c69-dfbe-44ad-ba6d-3e05e953b2ea",
    "context": {"patientId": "p1", "userId": "Practitioner/1"},
    "prefetch": {"patient": PATIENT},
}


def _write(tmp_path: Path, name: str, value: Any) -> Path:
    path = tmp_path / name
    path.write_bytes(orjson.dumps(value))
    return path


def _error_line(capsys: pytest.CaptureFixture[str]) -> str:
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("error: ")
    assert "Traceback" not in captured.err
    return lines[0]


def _fails(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) != 0
    return _error_line(capsys)


def test_a_missing_file_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert "no such file" in _fails(["evaluate", str(tmp_path / "nope.json")], capsys)


def test_a_directory_is_one_error_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert "is a directory" in _fails(["evaluate", str(tmp_path)], capsys)


@pytest.mark.parametrize("content", [b"BZh9 not really bzip2", bz2.compress(b"{}")[:20]])
def test_a_corrupt_bz2_file_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: bytes
) -> None:
    path = tmp_path / "broken.json.bz2"
    path.write_bytes(content)
    assert "broken.json.bz2 is not a readable compressed file" in _fails(
        ["evaluate", str(path)], capsys
    )


def test_an_impossible_now_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, "b.json", BUNDLE)
    line = _fails(["evaluate", str(path), "--now", "2026-13-45"], capsys)
    assert "--now '2026-13-45' is not a date" in line


@pytest.mark.parametrize("compress", [bz2.compress, gzip.compress])
def test_a_compressed_file_with_a_json_name_is_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], compress: Any
) -> None:
    path = tmp_path / "renamed.json"
    path.write_bytes(compress(orjson.dumps(BUNDLE)))
    assert main(["evaluate", str(path), "--now", "2026-01-01"]) == 0
    assert capsys.readouterr().out.strip() == "no cards"


def test_a_bundle_without_a_patient_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, "b.json", {"resourceType": "Bundle", "type": "collection"})
    assert "no Patient resource" in _fails(["evaluate", str(path)], capsys)


def test_a_hook_that_contradicts_the_request_file_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    knowledge = shipped_knowledge()
    service = knowledge.services_for("patient-view")[0]
    request = request_from_resources(
        [PATIENT], service.prefetch, hook="patient-view", hook_instance="t"
    )
    path = _write(tmp_path, "request.json", request)
    line = _fails(["evaluate", str(path), "--hook", "encounter-start"], capsys)
    assert "conflicts with the request file's hook 'patient-view'" in line
    assert main(["evaluate", str(path), "--hook", "patient-view", "--now", "2026-01-01"]) == 0


def test_an_invalid_request_file_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(tmp_path, "request.json", {**REQUEST, "hookInstance": 7})
    assert "invalid CDS Hooks request: hookInstance" in _fails(["evaluate", str(path)], capsys)


@pytest.mark.parametrize("hook", ["order-select", "order-sign"])
def test_an_order_hook_on_a_plain_bundle_says_no_draft_order_was_given(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], hook: str
) -> None:
    path = _write(tmp_path, "b.json", BUNDLE)
    assert "needs a draft order" in _fails(["evaluate", str(path), "--hook", hook], capsys)


def test_a_usage_error_is_one_error_line(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["evaluate"])
    assert exited.value.code == 2
    assert "one of the arguments file --panel is required" in _error_line(capsys)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"cds {__version__}"


def test_serve_help_has_help_texts_and_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    out = capsys.readouterr().out
    assert "address to listen on (default: 127.0.0.1)" in out
    assert "port to listen on (default: CDS_PORT, else 8080)" in out
    assert "(default: None)" not in out
    assert "(default: 20)" in out


def test_knowledge_check_fits_100_columns(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["knowledge", "check"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) > 10
    assert max(len(line) for line in lines) <= CHECK_WIDTH == 100


def test_coverage_check_says_so_on_success(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["knowledge", "coverage", "--check"]) == 0
    assert "is up to date" in capsys.readouterr().out


@pytest.mark.parametrize(
    "error",
    [
        KnowledgeError(["a.yaml: id: missing", "b.yaml: card: unknown"]),
        ConfigurationError(["CDS_PORT: not a number"]),
        OSError(13, "Permission denied", "/x/y"),
    ],
)
def test_any_command_prints_a_user_error_as_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], error: Exception
) -> None:
    """The wrapper is around every command, so commands added later get it without knowing."""

    def fails(*_: object) -> int:
        raise error

    monkeypatch.setitem(__import__("cds.cli").cli._COMMANDS, "knowledge check", fails)
    line = _fails(["knowledge", "check"], capsys)
    if isinstance(error, KnowledgeError):
        assert line == "error: invalid knowledge: a.yaml: id: missing; b.yaml: card: unknown"
    elif isinstance(error, OSError):
        assert line == "error: /x/y: Permission denied"
