"""The API's router: every controller under /api/v1, behind the permission guard, with the
body limits of the settings."""

from __future__ import annotations

from typing import Any

from litestar import Request, Router

from governance.web.api.admission import AdmissionController
from governance.web.api.audit import AuditController
from governance.web.api.bodies import MiB, refuse_nul
from governance.web.api.builders import BuilderController
from governance.web.api.connectors import ConnectorController
from governance.web.api.models import ModelController, PolicyController
from governance.web.api.monitoring import MonitoringController, PredictionController
from governance.web.api.people import (
    MeController,
    SessionController,
    TokenController,
    UserController,
)
from governance.web.api.reports import ReportController
from governance.web.api.requests import DecisionController, RequestController
from governance.web.api.submissions import SubmissionController
from governance.web.api.webhooks import WebhookController
from governance.web.guards import authorize

CONTROLLERS = [
    ReportController,
    SessionController,
    MeController,
    ModelController,
    PolicyController,
    RequestController,
    DecisionController,
    AdmissionController,
    AuditController,
    UserController,
    TokenController,
    WebhookController,
    PredictionController,
    MonitoringController,
    ConnectorController,
    BuilderController,
]


async def refuse_nul_parameters(request: Request[Any, Any, Any]) -> None:
    """No NUL in a path or query parameter (bodies refuse it themselves: bodies.py).
    async: Litestar runs a sync hook in its thread pool, a hop that costs ~0.2 ms a request."""
    refuse_nul([*request.path_params.items(), *request.query_params.multi_items()])


def api_router(max_json_bytes: int, max_upload_bytes: int) -> Router:
    """The API, with its body limits: small JSON everywhere, and room for up to four files
    of the upload limit on the one endpoint that takes candidates."""
    uploads = Router(
        path="/",
        route_handlers=[SubmissionController],
        request_max_body_size=4 * max_upload_bytes + MiB,
    )
    return Router(
        path="/api/v1",
        route_handlers=[*CONTROLLERS, uploads],
        guards=[authorize],
        before_request=refuse_nul_parameters,
        request_max_body_size=max_json_bytes,
    )
