"""The load generator: wrk (from Debian) with a Lua script for the POST body, else Python.

Both are bounded by a request count and a duration, and both report the same numbers, so a
run on a machine without wrk still produces a (slower, noisier) table.
"""

from __future__ import annotations

import asyncio
import math
import os
import re
import shutil
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import orjson

__all__ = ["LoadResult", "available_tool", "run_load"]

_LUA = Path(__file__).resolve().parent / "post.lua"
_RESULT = re.compile(r"^BENCH-RESULT (\{.*\})$", re.MULTILINE)


@dataclass(frozen=True)
class LoadResult:
    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0


def available_tool(preferred: str = "auto") -> str:
    if preferred == "python":
        return "python"
    if shutil.which("wrk"):
        return "wrk"
    if preferred == "wrk":
        raise RuntimeError("wrk is not installed (apt-get install wrk), use --loadgen python")
    return "python"


def run_load(
    url: str,
    body_file: Path,
    *,
    connections: int,
    max_requests: int,
    max_seconds: float,
    tool: str,
) -> LoadResult:
    if tool == "wrk":
        return _run_wrk(url, body_file, connections, max_requests, max_seconds)
    return asyncio.run(
        _run_python(url, body_file.read_bytes(), connections, max_requests, max_seconds)
    )


def _run_wrk(
    url: str, body_file: Path, connections: int, max_requests: int, max_seconds: float
) -> LoadResult:
    seconds = max(1, math.ceil(max_seconds))
    env = {
        **os.environ,
        "BENCH_BODY": str(body_file),
        "BENCH_MAX_REQUESTS": str(max_requests),
    }
    completed = subprocess.run(
        [
            "wrk",
            "-t1",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(_LUA),
            url,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=seconds + 30,
        check=False,
    )
    match = _RESULT.search(completed.stdout)
    if completed.returncode != 0 or match is None:
        raise RuntimeError(f"wrk failed ({completed.returncode}): {completed.stderr[-500:]}")
    data = orjson.loads(match.group(1))
    requests = int(data["requests"])
    seconds = data["duration_us"] / 1e6
    if requests >= max_requests:
        # wrk reports the whole -d duration even when the cap stopped the run early; with every
        # connection kept busy, requests x mean latency / connections is the time it took.
        seconds = requests * data["mean_us"] / 1e6 / connections
    return LoadResult(
        requests=requests,
        seconds=seconds,
        errors=int(data["bad"]),
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
    )


async def _run_python(
    url: str, body: bytes, connections: int, max_requests: int, max_seconds: float
) -> LoadResult:
    latencies: list[float] = []
    errors = 0
    headers = {"Content-Type": "application/json"}
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    async with httpx.AsyncClient(limits=limits, timeout=10.0) as client:
        started = time.perf_counter()
        deadline = started + max_seconds

        async def worker() -> None:
            nonlocal errors
            while len(latencies) + errors < max_requests and time.perf_counter() < deadline:
                sent = time.perf_counter()
                try:
                    response = await client.post(url, content=body, headers=headers)
                    ok = response.status_code == 200
                except httpx.HTTPError:
                    ok = False
                if ok:
                    latencies.append(time.perf_counter() - sent)
                else:
                    errors += 1

        await asyncio.gather(*(worker() for _ in range(connections)))
        elapsed = time.perf_counter() - started
    latencies.sort()
    if not latencies:
        return LoadResult(0, elapsed, errors, math.nan, math.nan)
    p99 = latencies[min(len(latencies) - 1, math.ceil(0.99 * len(latencies)) - 1)]
    return LoadResult(
        requests=len(latencies) + errors,
        seconds=elapsed,
        errors=errors,
        p50_ms=statistics.median(latencies) * 1000,
        p99_ms=p99 * 1000,
    )
