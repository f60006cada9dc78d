"""Production on the console: a promoted request's monitors, their runs and the
predictions received (a section of the request page, with "Run now"), and the registry
connectors' admin page (with "Sync now")."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get, post
from litestar.params import Parameter
from litestar.response import Redirect, Template

from governance.domain.records import MonitoringRunRecord
from governance.domain.workflow import State
from governance.services.browse import RequestDetail
from governance.services.registries import SyncOutcome
from governance.web.console.base import (
    REFUSALS,
    CsrfOnly,
    Form,
    can,
    failure_message,
    page,
    redirect,
)
from governance.web.dependencies import as_caller, governance_of, in_thread
from governance.web.guards import permission
from governance.web.problems import log

CONNECTORS = "/admin/connectors"
RUNS_SHOWN = 20  # the request page shows the latest runs; the API lists more
Monitor = Annotated[str, Parameter(pattern=r"^[a-z_]{1,40}$")]
ConnectorName = Annotated[str, Parameter(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$")]
# What a run's status means, in words, and its colour (the badge classes of the console).
RUN_STATUS = {
    "pass": ("good", "✓", "passed"),
    "breach": ("bad", "✗", "breach"),
    "insufficient": ("muted", "–", "too few rows to judge"),
    "error": ("bad", "✗", "could not run"),
    "running": ("wait", "…", "running"),
}
ACTIONS = {"alerted": "alert sent", "revoked": "revoked: admission now denies it"}


# --- the request page's section ------------------------------------------------------


async def monitoring_section(request: Request, detail: RequestDetail) -> dict[str, Any] | None:
    """The production monitoring of a request, or None when the page does not show it
    (never promoted, nothing run, or the reader may not read monitoring)."""
    if not can(request, "monitoring", "read"):
        return None
    r = detail.request
    monitoring = governance_of(request).monitoring
    runs = await in_thread(monitoring.runs, r.id, RUNS_SHOWN)
    promoted = r.state == State.PROMOTED.value
    if not promoted and not runs:
        return None
    settings = detail.policy.monitoring
    received = (
        await in_thread(monitoring.received, r.model, r.version)
        if can(request, "predictions", "read")
        else None
    )
    return {
        "monitors": [
            {"kind": kind, "schedule": monitor.schedule, "on_breach": monitor.on_breach}
            for kind, monitor in settings.monitors.items()
        ],
        "window_days": settings.window,
        "minimum_rows": settings.minimum_rows,
        "runs": runs,
        "looks": RUN_STATUS,
        "shown": RUNS_SHOWN,
        "received": received,
        "actions": ACTIONS,
        "may_run": promoted and can(request, "monitoring", "run"),
    }


@post(
    "/requests/{request_id:str}/monitoring/{monitor:str}/run",
    opt=permission("monitoring", "run"),
    name="console-run-monitor",
)
async def run_monitor(
    request: Request, request_id: str, monitor: Monitor, data: Annotated[CsrfOnly, Form]
) -> Redirect:
    back = f"/requests/{request_id}#monitoring"
    monitoring = governance_of(request).monitoring
    try:
        run = await as_caller(request, monitoring.run_now, request_id, monitor)
    except REFUSALS as exc:
        return redirect(request, back, failure_message(exc), kind="error")
    return redirect(request, back, ran(run))


def ran(run: MonitoringRunRecord) -> str:
    """The flash after "Run now": what the check found, and what it did (a run that
    could not judge is a result too: it is recorded, and its summary says why)."""
    _, _, words = RUN_STATUS.get(run.status, ("", "", run.status))
    text = f"The {run.monitor} check ran on {run.rows:,} production rows: {words}."
    if run.summary:
        text += f" {run.summary[:700].rstrip('.')}."
    if run.action:
        action = ACTIONS.get(run.action, run.action)
        text += f" {action[:1].upper()}{action[1:]}."
    return text


# --- the connectors page ---------------------------------------------------------------


@get(CONNECTORS, opt=permission("connectors", "read"), name="console-admin-connectors")
async def connectors_page(request: Request) -> Template:
    registries = governance_of(request).registries
    return page(
        request,
        "admin_connectors.html.j2",
        connectors=registries.status(),
        polls=registries.polls,
    )


@post(
    f"{CONNECTORS}/{{name:str}}/sync",
    opt=permission("connectors", "sync"),
    name="console-admin-sync-connector",
)
async def sync_connector(
    request: Request, name: ConnectorName, data: Annotated[CsrfOnly, Form]
) -> Redirect:
    registries = governance_of(request).registries
    try:
        result = await in_thread(registries.sync, name)
    except REFUSALS as exc:
        return redirect(request, CONNECTORS, failure_message(exc), kind="error")
    except Exception as exc:  # noqa: BLE001 - an unreachable registry; its status says so too
        log.warning("connector %s: sync from the console failed: %s", name, exc)
        return redirect(
            request,
            CONNECTORS,
            f"Connector {name} did not sync ({type(exc).__name__}: {str(exc)[:300]}). Fix: "
            "check that the registry is reachable with the connectors file's settings; "
            "it is tried again at its next poll",
            kind="error",
        )
    request.app.state.jobs.notify()
    return redirect(request, CONNECTORS, synced(result))


def synced(result: SyncOutcome) -> str:
    opened, refused = len(result.opened), len(result.refused)
    restored = len(result.aliases_restored)
    text = f"Connector {result.name} synced: {opened} request{'s' if opened != 1 else ''} opened"
    if refused:
        text += f", {refused} version{'s' if refused != 1 else ''} refused (listed below)"
    if restored:
        text += f", {restored} alias{'es' if restored != 1 else ''} put back"
    return text + "."


HANDLERS = [run_monitor, connectors_page, sync_connector]
