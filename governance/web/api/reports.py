"""Signed PDF reports: a request's decision report, a decision's bias audit, and the
model inventory. Each download is issued anew and its sha256 recorded in the audit trail."""

from __future__ import annotations

from typing import Annotated

from litestar import Controller, Request, Response
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter

from governance.web.api.operations import get
from governance.web.dependencies import governance_of, in_thread, principal_of
from governance.web.downloads import pdf_response
from governance.web.guards import permission

PDF_RESPONSE = {200: ResponseSpec(None, description="A signed PDF/A-3b report",
                                  media_type="application/pdf")}  # fmt: skip


class ReportController(Controller):
    """The reports hang under the resource they report on, so the paths are whole here."""

    path = "/"
    tags = ("reports",)

    @get(
        "/requests/{request_id:str}/report.pdf",
        opt=permission("reports", "read"),
        summary="The signed decision report of a request (its sha256 is recorded in the "
        "audit trail)",
        responses=PDF_RESPONSE,
    )
    async def decision_report(self, request: Request, request_id: str) -> Response[bytes]:
        reports = governance_of(request).reports
        issued = await in_thread(reports.decision, principal_of(request).name, request_id)
        return pdf_response(issued)

    @get(
        "/decisions/{decision_id:str}/bias-audit.pdf",
        opt=permission("reports", "read"),
        summary="A signed NYC Local Law 144 bias audit of the decided model on its data",
        responses=PDF_RESPONSE,
    )
    async def bias_audit_report(
        self,
        request: Request,
        decision_id: str,
        scoring: bool = False,
        sex: Annotated[str, Parameter(max_length=200)] = "sex",
        race: Annotated[str, Parameter(max_length=200)] = "race",
        source: Annotated[str | None, Parameter(max_length=1000)] = None,
        date_from: Annotated[str | None, Parameter(query="from", max_length=10)] = None,
        date_to: Annotated[str | None, Parameter(query="to", max_length=10)] = None,
    ) -> Response[bytes]:
        reports = governance_of(request).reports
        audit = (decision_id, sex, race, scoring, source, date_from, date_to)
        issued = await in_thread(reports.bias_audit, principal_of(request).name, *audit)
        return pdf_response(issued)

    @get(
        "/inventory/report.pdf",
        opt=permission("reports", "read"),
        summary="The signed model inventory report",
        responses=PDF_RESPONSE,
    )
    async def inventory_report(self, request: Request) -> Response[bytes]:
        reports = governance_of(request).reports
        issued = await in_thread(reports.inventory, principal_of(request).name)
        return pdf_response(issued)
