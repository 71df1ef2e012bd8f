"""`make bench-profile`: where the time of one large request goes, in-process, under cProfile.

The request goes through the real application (routing, body reading, validation, the rules,
rendering, the store) over an in-memory ASGI transport, so no socket or load generator blurs
the picture. Prints the median time of a few calls next to the time orjson needs just to parse
the body, then the functions that take the most time.
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
from collections.abc import Sequence
from pathlib import Path

import httpx
import orjson

from bench.workloads import build_workloads
from cds.app import create_app
from cds.knowledge import load_knowledge
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
    print(asyncio.run(_profile(workload.body, workload.service_id, args.repeat, args.top)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
