"""A signed report as a download, the same from the API and the console."""

from __future__ import annotations

from litestar import Response

from governance.domain.reporting import IssuedReport


def pdf_response(issued: IssuedReport) -> Response[bytes]:
    """The PDF as an attachment, its sha256 in a header (the audit trail records it)."""
    return Response(
        issued.pdf,
        media_type="application/pdf",
        headers={
            "Content-Disposition": f'attachment; filename="{issued.filename}"',
            "X-Report-Sha256": issued.sha256,
            "Cache-Control": "no-store",  # each download is issued and recorded anew
        },
    )
