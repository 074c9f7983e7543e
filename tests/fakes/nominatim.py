"""A fake Nominatim server answering `/search` and `/reverse` in the real `format=json` shape, for
geocoding tests.

Known addresses (matched case-insensitively, spaces collapsed) answer their places; anything
else answers [] like the real server. Each place is a JSON object with place_id, licence,
osm_type/osm_id, lat and lon as strings, class, type, place_rank, importance, addresstype,
name, display_name and a boundingbox of four strings; `addressdetails=1` adds `address`.
`countrycodes` filters by country like the real server, `limit` is clipped to 1..40.
`/reverse` answers the nearest point made known by `add_point` within REVERSE_RADIUS_M as one
object, and `{"error": "Unable to geocode"}` (status 200) like the real server when none is.

Every request is recorded (query parameters, User-Agent, arrival time on the monotonic clock).
The server can be told to fail the next N requests with a status (503 by default), to answer
the next N with broken JSON, or to be slow (at most MAX_DELAY_S, so waits stay bounded).
"""

from __future__ import annotations

import asyncio
import math
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
REVERSE_RADIUS_M = 200.0


@dataclass(frozen=True)
class Recorded:
    params: dict[str, str]
    user_agent: str
    at: float  # time.monotonic() on arrival


@dataclass
class FakeNominatim:
    places: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    points: list[dict[str, Any]] = field(default_factory=list)  # what /reverse knows
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

    def add_point(
        self, display_name: str, lat: float, lon: float, country_code: str = "de"
    ) -> None:
        """Make a point known to `/reverse`."""
        self._next_id += 1
        self.points.append(nominatim_place(self._next_id, display_name, lat, lon, country_code))

    def fail_next(self, count: int = 1, status: int = 503) -> None:
        self._faults.extend([status] * count)

    def break_next(self, count: int = 1) -> None:
        """Answer the next `count` requests 200 with a cut-off JSON body."""
        self._faults.extend([None] * count)

    @property
    def queries(self) -> list[str]:
        """What /search was asked, in order."""
        return [r.params["q"] for r in self.requests if "q" in r.params]

    @property
    def app(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/search", self._search, methods=["GET"]),
                Route("/reverse", self._reverse, methods=["GET"]),
            ]
        )

    async def _arrive(self, request: Request) -> tuple[dict[str, str], Response | None]:
        """Record the request; wait or fail as told. Returns its parameters and a refusal."""
        params = dict(request.query_params)
        self.requests.append(
            Recorded(params, request.headers.get("user-agent", ""), time.monotonic())
        )
        if self.delay_s > 0:
            await asyncio.sleep(min(self.delay_s, MAX_DELAY_S))
        if self._faults:
            status = self._faults.pop(0)
            if status is None:
                return params, Response(
                    '[{"place_id": 1, "lat": "52.5', media_type="application/json"
                )
            return params, PlainTextResponse("Service Unavailable", status_code=status)
        if params.get("format") != "json":
            return params, _error(
                f"Parameter 'format' must be json here, not {params.get('format')!r}."
            )
        return params, None

    async def _reverse(self, request: Request) -> Response:
        params, refusal = await self._arrive(request)
        if refusal is not None:
            return refusal
        try:
            lat, lon = float(params["lat"]), float(params["lon"])
        except (KeyError, ValueError):
            return _error("Need coordinates or OSM object to lookup.")
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            return _error("Invalid coordinates.")
        near = sorted(
            (_metres((lat, lon), (float(p["lat"]), float(p["lon"]))), i)
            for i, p in enumerate(self.points)
        )
        if not near or near[0][0] > REVERSE_RADIUS_M:
            return JSONResponse({"error": "Unable to geocode"})
        return JSONResponse(_public(self.points[near[0][1]], params.get("addressdetails") == "1"))

    async def _search(self, request: Request) -> Response:
        params, refusal = await self._arrive(request)
        if refusal is not None:
            return refusal
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


def _metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Roughly (equirectangular), which is plenty for a few hundred metres."""
    x = math.radians(b[1] - a[1]) * math.cos(math.radians((a[0] + b[0]) / 2))
    return 6_371_000 * math.hypot(x, math.radians(b[0] - a[0]))


def _key(query: str) -> str:
    return " ".join(query.split()).casefold()


def _error(message: str) -> JSONResponse:
    return JSONResponse({"error": {"code": 400, "message": message}}, status_code=400)
