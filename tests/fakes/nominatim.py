"""A fake Nominatim server answering `/search` in the real `format=json` shape, for geocoding tests.

Known addresses (matched case-insensitively, spaces collapsed) answer their places; anything
else answers [] like the real server. Each place is a JSON object with place_id, licence,
osm_type/osm_id, lat and lon as strings, class, type, place_rank, importance, addresstype,
name, display_name and a boundingbox of four strings; `addressdetails=1` adds `address`.
`countrycodes` filters by country like the real server, `limit` is clipped to 1..40.

Every request is recorded (query parameters, User-Agent, arrival time on the monotonic clock).
The server can be told to fail the next N requests with a status (503 by default), to answer
the next N with broken JSON, or to be slow (at most MAX_DELAY_S, so waits stay bounded).
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

LICENCE = "Data © OpenStreetMap contributors, ODbL 1.0. http://osm.org/copyright"
MAX_DELAY_S = 5.0
MAX_LIMIT = 40


@dataclass(frozen=True)
class Recorded:
    params: dict[str, str]
    user_agent: str
    at: float  # time.monotonic() on arrival


@dataclass
class FakeNominatim:
    places: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    delay_s: float = 0.0
    url: str = ""  # set by the test once the server runs
    _faults: list[int | None] = field(default_factory=list)  # status, or None for broken JSON
    _next_id: int = 100_000

    def add(
        self, query: str, *places: tuple[str, float, float] | tuple[str, float, float, str]
    ) -> None:
        """Make `query` known: places as (display_name, lat, lon[, country_code = "de"])."""
        found = self.places.setdefault(_key(query), [])
        for place in places:
            display_name, lat, lon, *rest = place
            self._next_id += 1
            found.append(
                nominatim_place(self._next_id, display_name, lat, lon, rest[0] if rest else "de")
            )

    def fail_next(self, count: int = 1, status: int = 503) -> None:
        self._faults.extend([status] * count)

    def break_next(self, count: int = 1) -> None:
        """Answer the next `count` requests 200 with a cut-off JSON body."""
        self._faults.extend([None] * count)

    @property
    def queries(self) -> list[str]:
        return [r.params.get("q", "") for r in self.requests]

    @property
    def app(self) -> Starlette:
        return Starlette(routes=[Route("/search", self._search, methods=["GET"])])

    async def _search(self, request: Request) -> Response:
        params = dict(request.query_params)
        self.requests.append(
            Recorded(params, request.headers.get("user-agent", ""), time.monotonic())
        )
        if self.delay_s > 0:
            await asyncio.sleep(min(self.delay_s, MAX_DELAY_S))
        if self._faults:
            status = self._faults.pop(0)
            if status is None:
                return Response('[{"place_id": 1, "lat": "52.5', media_type="application/json")
            return PlainTextResponse("Service Unavailable", status_code=status)
        if params.get("format") != "json":
            return _error(f"Parameter 'format' must be json here, not {params.get('format')!r}.")
        query = params.get("q", "").strip()
        if not query:
            return _error("Nothing to search for.")
        try:
            limit = min(max(int(params.get("limit", "10")), 1), MAX_LIMIT)
        except ValueError:
            return _error("Parameter 'limit' must be an integer.")
        codes = {c.strip().lower() for c in params.get("countrycodes", "").split(",") if c.strip()}
        found = [
            p for p in self.places.get(_key(query), []) if not codes or p["_country"] in codes
        ][:limit]
        details = params.get("addressdetails") == "1"
        return JSONResponse([_public(p, details) for p in found])


def nominatim_place(
    place_id: int, display_name: str, lat: float, lon: float, country_code: str = "de"
) -> dict[str, Any]:
    """One search result as Nominatim's `format=json` has it (plus our private `_country`)."""
    return {
        "place_id": place_id,
        "licence": LICENCE,
        "osm_type": "node",
        "osm_id": place_id * 7,
        "lat": f"{lat:.7f}",
        "lon": f"{lon:.7f}",
        "class": "place",
        "type": "house",
        "place_rank": 30,
        "importance": 0.5,
        "addresstype": "place",
        "name": display_name.split(",")[0].strip(),
        "display_name": display_name,
        "boundingbox": [
            f"{lat - 0.0001:.7f}",
            f"{lat + 0.0001:.7f}",
            f"{lon - 0.0001:.7f}",
            f"{lon + 0.0001:.7f}",
        ],
        "_country": country_code.lower(),
    }


def _public(place: dict[str, Any], details: bool) -> dict[str, Any]:
    body = {k: v for k, v in place.items() if not k.startswith("_")}
    if details:
        body["address"] = {"country_code": place["_country"]}
    return body


def _key(query: str) -> str:
    return " ".join(query.split()).casefold()


def _error(message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": 400, "message": message}}, status_code=400)
