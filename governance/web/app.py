"""The Litestar application: the API under /api/v1, /health and /ready outside it, the
OpenAPI schema at /schema, and (tasks embedded) the job runner started and stopped with
the app."""

from __future__ import annotations

import gc
import os
from typing import Any

from alembic.script import ScriptDirectory
from litestar import Litestar, get
from litestar.datastructures import State
from litestar.middleware import DefineMiddleware
from litestar.openapi import OpenAPIConfig, ResponseSpec
from litestar.openapi.plugins import JsonRenderPlugin, YamlRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from governance import config
from governance.bootstrap import Governance, open_governance
from governance.config import Settings
from governance.services.jobs import JobRunner, Ticker
from governance.store.database import alembic_config, current_revision
from governance.web import console, problems
from governance.web.api.router import api_router
from governance.web.auth import BearerAuthentication
from governance.web.guards import PUBLIC
from governance.web.headers import security_headers
from governance.web.problems import Problem


@get("/health", opt=PUBLIC, tags=["service"], summary="The process answers")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@get(
    "/ready",
    opt=PUBLIC,
    responses={
        503: ResponseSpec(
            Problem,
            description="The database is unreachable or not migrated",
            media_type=problems.MEDIA_TYPE,
            generate_examples=False,
        )
    },
    tags=["service"],
    summary="The database is reachable and migrated",
    sync_to_thread=True,
)
def ready(state: State) -> Any:
    governance: Governance = state.governance
    url = governance.settings.database_url
    try:
        revision = current_revision(url)
    except Exception as exc:  # noqa: BLE001 - any failure means: not ready
        return problems.problem(503, f"database unreachable: {type(exc).__name__}")
    head = ScriptDirectory.from_config(alembic_config(url)).get_current_head()
    if revision != head:
        return problems.problem(
            503, f"database at migration {revision}, code expects {head}: run governance init"
        )
    return {"status": "ready", "migration": revision}


def create_app(
    settings: Settings, run_jobs: bool = True, job_poll_seconds: float = 1.0
) -> Litestar:
    governance = open_governance(settings)
    jobs = JobRunner(governance.workflow, poll_seconds=job_poll_seconds)
    tickers = [Ticker(name, seconds, task) for name, seconds, task in governance.periodic()]
    # With workers, this process only queues tasks: a check never takes its cores.
    run_jobs = run_jobs and settings.tasks == "embedded"

    def start() -> None:
        governance.access.refresh()
        if run_jobs:
            jobs.start()
            for ticker in tickers:
                ticker.start()
        # The imports leave ~300,000 long-lived objects; a full collection walking them
        # stalls every request for 0.2-0.4 s (bench/RESULTS.md). Keep the collector off them.
        gc.freeze()

    def stop() -> None:
        jobs.stop()
        for ticker in tickers:
            ticker.stop()
        governance.close()

    return Litestar(
        route_handlers=[
            health,
            ready,
            api_router(settings.max_json_bytes, settings.max_upload_bytes),
            console.console_router(),
            console.static_router(),
        ],
        template_config=console.template_config(),
        state=State(
            {"governance": governance, "jobs": jobs, "tickers": {t.name: t for t in tickers}}
        ),
        middleware=[
            DefineMiddleware(BearerAuthentication, exclude=["^/schema", "^/health", "^/ready"])
        ],
        before_send=[security_headers],
        exception_handlers=problems.HANDLERS,
        on_startup=[start],
        on_shutdown=[stop],
        request_max_body_size=settings.max_json_bytes,
        openapi_config=OpenAPIConfig(
            title="governance",
            version="1",
            description="A policy-driven gatekeeper between ML training and serving.",
            path="/schema",
            # The schema only, as JSON (also at /schema) and YAML: every HTML renderer
            # Litestar ships loads its scripts from a CDN, which a gatekeeper's pages must not.
            render_plugins=[JsonRenderPlugin(), YamlRenderPlugin()],
            components=Components(
                security_schemes={
                    "bearer": SecurityScheme(
                        type="http",
                        scheme="bearer",
                        description="An API token, or a session token from POST /api/v1/sessions",
                    )
                }
            ),
        ),
        debug=False,
    )


def app_from_env() -> Litestar:
    """The app for `uvicorn --factory`: settings from GOVERNANCE_* variables. A served
    process makes files only its own user may read (reports, registry downloads, …)."""
    os.umask(0o077)
    return create_app(config.settings())
