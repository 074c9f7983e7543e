"""The report's chart: deliveries per hour, the on-time share per hour and deliveries per driver,
one PNG (matplotlib, Agg). Blocking: call it in a worker thread (`asyncio.to_thread`)."""

from __future__ import annotations

import io

from core.reports.metrics import Metrics

WIDTH_IN, HEIGHT_IN, DPI = 12, 9, 100  # 1200 × 900 px
DRIVER_BARS = 25  # the busiest drivers; the CSV has all of them


def render(metrics: Metrics, title: str) -> bytes:
    from matplotlib.figure import Figure  # the Agg canvas; no pyplot, no global state

    figure = Figure(figsize=(WIDTH_IN, HEIGHT_IN), dpi=DPI)
    figure.subplots_adjust(left=0.06, right=0.98, top=0.92, bottom=0.09, hspace=0.45)
    figure.suptitle(title)
    per_hour, timely, drivers = figure.subplots(3, 1)
    hours = [h for h, _, _ in metrics.hourly]
    delivered = [d for _, d, _ in metrics.hourly]
    per_hour.bar(hours, delivered, color="#2b7bb9")
    per_hour.set_title("Deliveries per hour")
    per_hour.set_xticks(range(0, 24, 2))
    per_hour.set_xlim(-0.5, 23.5)
    shares = [(h, 100 * t / d) for h, d, t in metrics.hourly if d]
    timely.plot([h for h, _ in shares], [s for _, s in shares], marker="o", color="#3a9b4a")
    timely.set_title("On time, % of deliveries per hour")
    timely.set_ylim(0, 105)
    timely.set_xticks(range(0, 24, 2))
    timely.set_xlim(-0.5, 23.5)
    busiest = metrics.drivers[:DRIVER_BARS]
    places = range(len(busiest))  # by place: two drivers may share a first name
    drivers.bar(places, [d.delivered for d in busiest], color="#e08a1e")
    drivers.set_xticks(places, [d.name for d in busiest], rotation=45, fontsize=8)
    drivers.set_title(
        "Deliveries per driver"
        + (
            f" (the busiest {DRIVER_BARS} of {len(metrics.drivers)})"
            if len(metrics.drivers) > DRIVER_BARS
            else ""
        )
    )
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()
