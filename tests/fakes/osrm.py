"""A fake OSRM server speaking the `table` service's format, for the travel-time tests.

Roads are straight lines × 1.2 at 10 m/s, with decimals (so rounding is tested). Points north of
80° have no route (OSRM answers null). Like OSRM's --max-table-size, a query with more than
max_table² source-destination pairs is refused with TooBig. Requests are counted.
"""

from __future__ import annotations

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

EARTH_RADIUS_M = 6_371_008.8


def road_table(sources: np.ndarray, destinations: np.ndarray) -> np.ndarray:
    """Road metres between every (lon, lat) row of `sources` and of `destinations`."""
    lon1, lat1 = np.radians(sources).T[:, :, None]
    lon2, lat2 = np.radians(destinations).T[:, None, :]
    h = np.sin((lat2 - lat1) / 2) ** 2
    h = h + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(h, 0, 1))) * 1.2


def road_metres(a: tuple[float, float], b: tuple[float, float]) -> float:
    return float(road_table(np.array([a]), np.array([b]))[0, 0])


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
        at = np.array(points)
        metres = road_table(at[sources], at[destinations])
        no_road = (at[sources, 1] > 80)[:, None] | (at[destinations, 1] > 80)[None, :]

        def cells(per_metre: float) -> list[list[float | None]]:
            rows = np.round(metres * per_metre, 1).tolist()
            if no_road.any():
                for i, j in zip(*np.nonzero(no_road), strict=True):
                    rows[i][j] = None
            return rows

        body: dict[str, object] = {"code": "Ok"}
        if "duration" in annotations:
            body["durations"] = cells(0.1)
        if "distance" in annotations:
            body["distances"] = cells(1.0)
        waypoint = [{"hint": "", "distance": 0.0, "name": "", "location": [0.0, 0.0]}]
        body["sources"] = waypoint * len(sources)
        body["destinations"] = waypoint * len(destinations)
        return JSONResponse(body)

    return app
