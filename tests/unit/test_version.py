"""The version is written once (``cds.__version__``); the package and the API read it from there."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from cds import __version__
from cds.app import create_app
from cds.settings import Settings


def test_package_metadata_and_openapi_carry_the_one_version(tmp_path: Path) -> None:
    assert importlib.metadata.version("cds-breast-cancer-followup") == __version__
    app = create_app(Settings(data_dir=tmp_path / "var", require_jwt=False, cors_origins=""))
    assert app.openapi()["info"]["version"] == __version__
