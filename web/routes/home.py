"""`/`: what this service runs (channels, API, tracking pages, health, scheduled jobs) and how
to enable the chat channels that are off."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from core.channels import channel_states
from core.scheduler import local, next_fire
from web.pages import templates

router = APIRouter()


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def home(request: Request) -> Response:
    settings = request.app.state.settings
    services = request.app.state.services
    zone = settings.app.timezone
    now = services.clock()
    jobs = [(job.name, job.when, next_fire(job, now)) for job in request.app.state.scheduler.jobs]
    context = {
        "channels": channel_states(settings),
        "jobs": [(name, when, local(at, zone) if at else None) for name, when, at in jobs],
        "now": local(now, zone),
        "zone": zone,
        "dispatch_mode": settings.dispatch.mode,
        "base_url": str(settings.app.base_url).rstrip("/"),
    }
    return templates.TemplateResponse(request, "home.html", context)
