"""The app `cds serve --workers N` builds in each worker: complete, long-lived objects frozen."""

from __future__ import annotations

import gc

from fastapi import FastAPI

from cds.server import served_app


def test_served_app_freezes_the_long_lived_heap() -> None:
    thresholds = gc.get_threshold()
    try:
        app = served_app()
        assert isinstance(app, FastAPI)
        assert gc.get_freeze_count() > 10_000  # modules, knowledge, the app
        assert gc.get_threshold()[0] == 10_000  # bodies are not re-walked while being parsed
        assert {"/cds-services", "/cds-services/{service_id}"} <= set(app.openapi()["paths"])
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
