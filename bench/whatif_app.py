"""What-ifs for bench/admission.py: the governance app exactly as `governance serve` builds
it, with changes swapped in from outside, so that a proposed product change can be
measured before anyone makes it. The product code is not touched.

`BENCH_WHATIF` (comma-separated) chooses the changes; the default is `async-hooks`:

- `async-hooks`: the router's authorization guard and its before-request hook as
  `async def`. Litestar runs a synchronous guard or hook in its thread pool
  (`ensure_async_callable` wraps it in `sync_to_thread`), so today every API request hops
  to a worker thread and back twice, to read a cached casbin answer and to look for NUL
  characters in its parameters.
- `gc-freeze`: `gc.freeze()` once the worker has started. A worker holds some 300,000
  objects from its imports (pandas, scikit-learn, SQLAlchemy, Litestar …); each full
  (generation-2) collection walks all of them and stops the event loop for about 0.25 s
  here. Frozen objects are never walked again.
- `principal-ttl=SECONDS`: how long `People` keeps a bearer secret's principal (the product
  keeps it 2 s). When the entry lapses, every request in flight misses at once and each
  looks the token up on its own thread: a long TTL shows what that herd costs (a
  single-flight refresh would cost about as little).
- `probe=DIR`: measures, changes nothing: every garbage-collector pass (generation and
  pause) and the event loop's lag (a 5 ms ticker); written to DIR/<worker pid>.json when
  the worker stops.

    BENCH_WHATIF=async-hooks,gc-freeze GOVERNANCE_HOME=… GOVERNANCE_DATABASE_URL=… \
        .venv/bin/python -m uvicorn whatif_app:app_from_env --factory --app-dir bench \
        --workers 2 --log-level warning
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import time
from pathlib import Path
from typing import Any

from litestar import Litestar, Request
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

import governance.services.people as people
import governance.web.api.router as api
from governance import config
from governance.config import Settings
from governance.web.app import create_app

DEFAULT = "async-hooks"
KNOWN = ("async-hooks", "gc-freeze", "principal-ttl", "probe")
TICK = 0.005


def changes(spec: str | None = None) -> dict[str, str]:
    """`BENCH_WHATIF` (or `spec`) as {change: value}."""
    text = spec if spec is not None else os.environ.get("BENCH_WHATIF", DEFAULT)
    found = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, _, value = item.partition("=")
        if name not in KNOWN:
            raise ValueError(f"BENCH_WHATIF: unknown change {name!r}; known: {KNOWN}")
        found[name] = value
    return found


def create_whatif_app(
    settings: Settings, run_jobs: bool = True, spec: str | None = None
) -> Litestar:
    chosen = changes(spec)
    if "principal-ttl" in chosen:  # read by People.authenticate on every lookup
        people.SESSION_CACHE_SECONDS = float(chosen["principal-ttl"])
    # Both are looked up in the module's namespace when api_router() builds the router.
    saved = {name: getattr(api, name) for name in ("authorize", "refuse_nul_parameters")}
    if "async-hooks" in chosen:
        guard, hook = saved["authorize"], saved["refuse_nul_parameters"]

        async def authorize(
            connection: ASGIConnection[Any, Any, Any, Any], handler: BaseRouteHandler
        ) -> None:
            guard(connection, handler)

        async def refuse_nul_parameters(request: Request[Any, Any, Any]) -> None:
            hook(request)

        api.authorize = authorize  # type: ignore[assignment]
        api.refuse_nul_parameters = refuse_nul_parameters  # type: ignore[assignment]
    try:
        app = create_app(settings, run_jobs=run_jobs)
    finally:
        for name, value in saved.items():
            setattr(api, name, value)
    if "gc-freeze" in chosen:
        app.on_startup.append(gc.freeze)  # after the product's own start hook
    if "probe" in chosen:
        Probe(Path(chosen["probe"])).attach(app)
    return app


class Probe:
    """Garbage-collector pauses and event-loop lag in one worker, for the report."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.pauses: dict[int, list[float]] = {0: [], 1: [], 2: []}
        self.lags: list[float] = []
        self._started = 0.0
        self._ticker: asyncio.Task[None] | None = None

    def attach(self, app: Litestar) -> None:
        app.on_startup.append(self.start)
        app.on_shutdown.insert(0, self.stop)

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.pauses[info["generation"]].append(time.perf_counter() - self._started)

    async def _tick(self) -> None:
        while True:
            started = time.perf_counter()
            await asyncio.sleep(TICK)
            self.lags.append(time.perf_counter() - started - TICK)

    def start(self) -> None:
        gc.callbacks.append(self._on_gc)
        self._ticker = asyncio.get_running_loop().create_task(self._tick())

    def stop(self) -> None:
        gc.callbacks.remove(self._on_gc)
        if self._ticker is not None:
            self._ticker.cancel()
        self.directory.mkdir(parents=True, exist_ok=True)
        report = {"gc_pauses": self.pauses, "loop_lags": self.lags}
        (self.directory / f"{os.getpid()}.json").write_text(json.dumps(report))


def app_from_env() -> Litestar:
    return create_whatif_app(config.settings())
