"""`make bench-profile`: where the time of one large request goes, in-process, under cProfile.

The request goes through the real application (routing, body reading, validation, the rules,
rendering, the store) over an in-memory ASGI transport, so no socket or load generator blurs
the picture. Prints the median time of a few calls next to the time orjson needs just to parse
the body, each step of a call timed on its own, then the functions that take the most time.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import orjson

from bench.workloads import build_workloads
from cds.app import create_app
from cds.call.prefetch import resolve_prefetch
from cds.call.render import render_cards
from cds.call.service_call import draft_orders_of, run_service
from cds.engine.evaluate import evaluate
from cds.engine.record import PatientRecord
from cds.kb.loader import Knowledge, load_knowledge
from cds.protocol.wire import HookRequest
from cds.settings import Settings


async def _profile(body: bytes, service_id: str, repeat: int, top: int) -> str:
    with tempfile.TemporaryDirectory(prefix="cds-profile-") as tmp:
        app = create_app(Settings(data_dir=Path(tmp), log_level="WARNING"))
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://bench") as client:
                url = f"/cds-services/{service_id}"
                headers = {"Content-Type": "application/json"}

                async def call() -> float:
                    started = time.perf_counter()
                    response = await client.post(url, content=body, headers=headers)
                    response.raise_for_status()
                    return (time.perf_counter() - started) * 1000

                await call()  # warm-up
                times = [await call() for _ in range(repeat)]
                profiler = cProfile.Profile()
                profiler.enable()
                await call()
                profiler.disable()
    parse = []
    for _ in range(repeat):
        started = time.perf_counter()
        orjson.loads(body)
        parse.append((time.perf_counter() - started) * 1000)
    out = io.StringIO()
    out.write(
        f"body {len(body) / 1024:,.0f} KB: one call {statistics.median(times):.1f} ms "
        f"(median of {repeat}, in-process); orjson.loads alone {statistics.median(parse):.1f} ms\n"
    )
    stats = pstats.Stats(profiler, stream=out)
    stats.strip_dirs().sort_stats("cumulative").print_stats(top)
    stats.sort_stats("tottime").print_stats(top)
    return out.getvalue()


def phase_times(
    knowledge: Knowledge, service_id: str, body: bytes, repeat: int = 20
) -> dict[str, float]:
    """Median milliseconds of each step of one call, run directly (no HTTP, no database)."""
    service = knowledge.services[service_id]
    settings = Settings(log_level="WARNING")
    now = datetime.now(UTC)
    loop = asyncio.new_event_loop()
    try:
        data = orjson.loads(body)
        request = HookRequest.model_validate(data)
        resolved = loop.run_until_complete(
            resolve_prefetch(request, service.prefetch, None, budget_seconds=1.0)
        )
        patient_id = str(request.context["patientId"])
        drafts = draft_orders_of(request.hook, request.context)

        def build() -> PatientRecord:
            return PatientRecord.build(
                resolved.resources,
                now=now,
                patient_id=patient_id,
                draft_orders=drafts,
                ingredients=knowledge.ingredients,
                index=knowledge.code_index,
                kinds_read_whole=knowledge.kinds_read_whole,
            )

        record = build()
        fired = evaluate(knowledge, service.rules, record).fired

        def cards() -> list[dict[str, Any]]:
            return render_cards(
                knowledge,
                fired,
                hook_instance=request.hook_instance,
                patient_id=patient_id,
                base_url=settings.public_base_url,
            )

        response = {"cards": cards()}
        steps: dict[str, Callable[[], object]] = {
            "parse the body (orjson)": lambda: orjson.loads(body),
            "check the request envelope": lambda: HookRequest.model_validate(data),
            "split the prefetch": lambda: loop.run_until_complete(
                resolve_prefetch(request, service.prefetch, None, budget_seconds=1.0)
            ),
            "index the record": build,
            # on a fresh record: a record caches its look-ups and parsed dates
            "index the record, then evaluate the rules": lambda: evaluate(
                knowledge, service.rules, build()
            ),
            "build the cards": cards,
            "render the response": lambda: orjson.dumps(response),
            "whole call (run_service + render)": lambda: orjson.dumps(
                loop.run_until_complete(
                    run_service(
                        service,
                        HookRequest.model_validate(orjson.loads(body)),
                        knowledge=knowledge,
                        settings=settings,
                        fhir_transport=None,
                        now=now,
                    )
                ).wire()
            ),
        }
        times = {}
        for name, step in steps.items():
            step()
            samples = []
            for _ in range(repeat):
                started = time.perf_counter()
                step()
                samples.append((time.perf_counter() - started) * 1000)
            times[name] = statistics.median(samples)
        return times
    finally:
        loop.close()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.profile", description=__doc__)
    parser.add_argument("--workload", default="large", choices=("small", "large", "order-sign"))
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args(argv)
    settings = Settings()
    knowledge = load_knowledge(settings.knowledge_dir, settings.cards_dir)
    workloads, _ = build_workloads(knowledge, fhir_base_url="http://127.0.0.1:9")
    workload = next((w for w in workloads if w.name == args.workload), None)
    if workload is None:
        print(f"no {args.workload} workload for this knowledge", file=sys.stderr)
        return 2
    for name, ms in phase_times(knowledge, workload.service_id, workload.body).items():
        print(f"{ms:10.3f} ms  {name}")
    print(asyncio.run(_profile(workload.body, workload.service_id, args.repeat, args.top)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
