"""The playground and its report endpoints: a chat page for any router, and the cost
and A/B reports (text and plots) of the routers a key may use."""

from __future__ import annotations

import asyncio
import tempfile
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from llmrouter._router_report import router_report
from llmrouter.core._router import BaseRouter
from llmrouter.serve._errors import APIError
from llmrouter.serve._settings import ApiKey


def playground_html() -> str:
    """The playground page (one self-contained HTML file, no external assets)."""
    return resources.files("llmrouter.serve").joinpath("static/playground.html").read_text()


def report_json(router: BaseRouter, days: int = 7) -> dict[str, Any]:
    """What a router's reports say, as JSON-ready data (budgets, spend, experiment)."""
    report = router_report(router, days)
    out: dict[str, Any] = {
        "type": type(router).__name__,
        "budgets": [
            {
                "budget": s.budget.describe(s.user),
                "spent_usd": s.spent_usd,
                "reserved_usd": s.reserved_usd,
                "remaining_usd": s.remaining_usd,
            }
            for s in report.budgets
        ],
        "spend_by_day": report.spend_by_day,
    }
    if report.experiment is not None:
        out["experiment"] = str(report.experiment)
    return out


def add_playground(
    app: FastAPI,
    routers: dict[str, BaseRouter],
    authenticate: Any,
) -> None:
    """Mount the page at ``/`` and ``/playground`` and the report endpoints under
    ``/v1/llmrouter/reports``."""

    @app.get("/", include_in_schema=False)
    @app.get("/playground", include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(playground_html())

    def allowed(request: Request) -> dict[str, BaseRouter]:
        key: ApiKey | None = authenticate(request)
        return {n: r for n, r in routers.items() if key is None or key.allows(n)}

    @app.get("/v1/llmrouter/reports")
    async def reports(request: Request) -> dict[str, Any]:
        mine = allowed(request)
        data = await asyncio.to_thread(lambda: {n: report_json(r) for n, r in mine.items()})
        return {"routers": data}

    @app.get("/v1/llmrouter/reports/{name}/{kind}.png")
    async def plot(request: Request, name: str, kind: str) -> Response:
        router = allowed(request).get(name)
        if router is None or kind not in ("spend", "ab"):
            raise APIError(404, f"no {kind} plot for {name!r}", kind="not_found_error")
        png = await asyncio.to_thread(_plot, name, router, kind)
        if png is None:
            raise APIError(404, f"{name!r} has no {kind} report yet", kind="not_found_error")
        return Response(png, media_type="image/png")


def _plot(name: str, router: BaseRouter, kind: str) -> bytes | None:
    report = router_report(router)
    if kind == "spend":
        if not report.spend_by_day:
            return None
        from llmrouter.cost._spend_report import plot_spend

        return plot_spend(name, report.spend_by_day)
    if report.experiment is None:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ab.png"
        report.experiment.plot(path)
        return path.read_bytes()
