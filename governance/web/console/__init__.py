"""The web console: server-rendered pages (Jinja2) for the people who decide, with htmx
for the parts that update in place. No JavaScript build step: htmx and one small script
are served as files."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jinja2 import Environment
from litestar import Router
from litestar.contrib.jinja import JinjaTemplateEngine
from litestar.static_files import create_static_files_router
from litestar.template.config import TemplateConfig

from governance.reports.documents import data_uri
from governance.resources import packaged
from governance.web.console import admin, catalog, monitoring, requests, webhooks
from governance.web.console.base import HANDLERS, console_guard

TEMPLATES = packaged("web", "templates")
STATIC = packaged("web", "static")


def console_router() -> Router:
    """Every console page, behind the session guard (the API's bearer middleware skips
    them: `exclude_from_auth`)."""
    return Router(
        path="/",
        route_handlers=[
            *requests.HANDLERS,
            *admin.HANDLERS,
            *catalog.HANDLERS,
            *webhooks.HANDLERS,
            *monitoring.HANDLERS,
        ],
        guards=[console_guard],
        opt={"exclude_from_auth": True},
        exception_handlers=HANDLERS,
        include_in_schema=False,
    )


def static_router() -> Router:
    return create_static_files_router(
        path="/static",
        directories=[STATIC],
        opt={"exclude_from_auth": True, "permission": "public"},
        include_in_schema=False,
        send_as_attachment=False,
    )


def template_config() -> TemplateConfig[JinjaTemplateEngine]:
    return TemplateConfig(directory=TEMPLATES, engine=JinjaTemplateEngine, engine_callback=_filters)


def _filters(engine: JinjaTemplateEngine) -> None:
    environment: Environment = engine.engine
    environment.autoescape = True
    environment.filters.update(
        {"utc": utc_text, "iso": iso_utc, "age": age_text, "data_uri": data_uri}
    )


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def iso_utc(moment: datetime | None) -> str:
    """For <time datetime=…>: the browser shows it in the reader's local time."""
    if moment is None:
        return ""
    return _aware(moment).astimezone(UTC).isoformat().replace("+00:00", "Z")


def utc_text(moment: datetime | None) -> str:
    if moment is None:
        return "—"
    return _aware(moment).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def age_text(age: timedelta | None) -> str:
    if age is None:
        return "—"
    seconds = int(age.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count != 1 else ''}"
    return "just now"
