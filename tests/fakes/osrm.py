"""A fake OSRM server speaking the `table` service's format, for the travel-time tests.

Roads are straight lines × 1.2 at 10 m/s, with decimals (so rounding is tested). Points north of
80° have no route (OSRM answers null). Like OSRM's --max-table-size, a query with more than
max_table² source-destination pairs is refused with TooBig. Requests are counted.
"""

from __future__ import annotations

import math

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

EARTH_RADIUS_M = 6_371_008.8


def road_metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    (lon1, lat1), (lon2, lat2) = a, b
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(math.sqrt(h)) * 1.2


def create_fake_osrm(max_table: int = 100) -> FastAPI:
    app = FastAPI()
    app.state.requests = []

    def error(code: str, message: str) -> JSONResponse:
        return JSONResponse({"code": code, "message": message}, status_code=400)

    @app.get("/table/v1/{profile}/{coordinates}")
    async def table(profile: str, coordinates: str, request: Request) -> JSONResponse:
        app.state.requests.append(str(request.url))
        if profile != "driving":
            return error("InvalidOptions", f"profile {profile} not found")
        try:
            points = [tuple(float(x) for x in c.split(",")) for c in coordinates.split(";")]
            assert all(len(p) == 2 and -180 <= p[0] <= 180 and -90 <= p[1] <= 90 for p in points)
        except (ValueError, AssertionError):
            return error("InvalidQuery", "Query string malformed close to position 0")
        query = request.query_params
        every = ";".join(str(i) for i in range(len(points)))
        sources = [int(i) for i in query.get("sources", every).split(";")]
        destinations = [int(i) for i in query.get("destinations", every).split(";")]
        if len(sources) * len(destinations) > max_table * max_table:
            return error("TooBig", "Too many table coordinates")
        annotations = query.get("annotations", "duration").split(",")

        def cell(i: int, j: int, per_metre: float) -> float | None:
            if points[i][1] > 80 or points[j][1] > 80:
                return None
            return round(road_metres(points[i], points[j]) * per_metre, 1)

        body: dict[str, object] = {"code": "Ok"}
        if "duration" in annotations:
            body["durations"] = [[cell(i, j, 0.1) for j in destinations] for i in sources]
        if "distance" in annotations:
            body["distances"] = [[cell(i, j, 1.0) for j in destinations] for i in sources]
        waypoint = [{"hint": "", "distance": 0.0, "name": "", "location": [0.0, 0.0]}]
        body["sources"] = waypoint * len(sources)
        body["destinations"] = waypoint * len(destinations)
        return JSONResponse(body)

    return app
