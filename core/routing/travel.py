"""Travel times and distances between points: integer seconds and metres, rounded up.

- `StraightLine`: haversine × detour factor ÷ speed; works offline.
- `Osrm`: OSRM's `table` service (road network), asked in blocks no larger than its limit.
Both multiply times by a `TrafficProfile` for the hour of departure (rush hours slower).
`Cached` remembers each pair per provider and hour, so a new order costs one row and one column.
Durations are rounded up: rounding down makes plans that break windows on the road.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol
from zoneinfo import ZoneInfo

import httpx
import numpy as np

from core.config import RoutingSettings
from core.errors import DomainError
from core.routing.traffic import parse_factors

EARTH_RADIUS_M = 6_371_008.8
UNREACHABLE_S = 24 * 3600  # what OSRM's null (no route) becomes: a day, never chosen


@dataclass(frozen=True)
class Point:
    lat: float
    lon: float

    def __post_init__(self) -> None:
        if not (-90 <= self.lat <= 90 and -180 <= self.lon <= 180):
            raise DomainError("routing.bad_point", lat=self.lat, lon=self.lon)


@dataclass(frozen=True)
class Matrix:
    durations: np.ndarray  # seconds, int64
    distances: np.ndarray  # metres, int64


@dataclass(frozen=True)
class TrafficProfile:
    """A travel-time factor per local hour of day (1.0 = free flow)."""

    factors: tuple[float, ...] = (1.0,) * 24
    zone: str = "UTC"

    def __post_init__(self) -> None:
        if len(self.factors) != 24 or any(f <= 0 for f in self.factors):
            raise DomainError("routing.bad_traffic", text=str(self.factors))

    def factor(self, when: datetime) -> float:
        return self.factors[when.astimezone(ZoneInfo(self.zone)).hour]

    @classmethod
    def parse(cls, text: str, zone: str = "UTC") -> TrafficProfile:
        try:
            return cls(parse_factors(text), zone)
        except ValueError:
            raise DomainError("routing.bad_traffic", text=text) from None


class TravelProvider(Protocol):
    name: str

    async def matrix(
        self, sources: Sequence[Point], destinations: Sequence[Point], depart_at: datetime
    ) -> Matrix: ...


def haversine_m(sources: Sequence[Point], destinations: Sequence[Point]) -> np.ndarray:
    lat1 = np.radians([p.lat for p in sources])[:, None]
    lon1 = np.radians([p.lon for p in sources])[:, None]
    lat2 = np.radians([p.lat for p in destinations])[None, :]
    lon2 = np.radians([p.lon for p in destinations])[None, :]
    a = (
        np.sin((lat2 - lat1) / 2) ** 2
        + np.cos(lat1) * np.cos(lat2) * np.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(np.clip(a, 0, 1)))


@dataclass
class StraightLine:
    speed_kmh: float = 25.0
    detour: float = 1.3
    traffic: TrafficProfile = field(default_factory=TrafficProfile)
    name: str = "straight-line"

    async def matrix(
        self, sources: Sequence[Point], destinations: Sequence[Point], depart_at: datetime
    ) -> Matrix:
        metres = haversine_m(sources, destinations) * self.detour
        seconds = metres / (self.speed_kmh / 3.6) * self.traffic.factor(depart_at)
        return Matrix(np.ceil(seconds).astype(np.int64), np.ceil(metres).astype(np.int64))


class OsrmError(RuntimeError):
    pass


@dataclass
class Osrm:
    """OSRM `table` service. `max_table` is the server's --max-table-size (default 100)."""

    base_url: str
    client: httpx.AsyncClient
    profile: str = "driving"
    max_table: int = 100
    traffic: TrafficProfile = field(default_factory=TrafficProfile)
    name: str = "osrm"

    async def matrix(
        self, sources: Sequence[Point], destinations: Sequence[Point], depart_at: datetime
    ) -> Matrix:
        durations = np.zeros((len(sources), len(destinations)), dtype=np.float64)
        distances = np.zeros_like(durations)
        block = max(1, self.max_table)  # OSRM refuses more than max_table² pairs at once
        for i in range(0, len(sources), block):
            for j in range(0, len(destinations), block):
                block_s, block_d = sources[i : i + block], destinations[j : j + block]
                seconds, metres = await self._table(block_s, block_d)
                durations[i : i + len(block_s), j : j + len(block_d)] = seconds
                distances[i : i + len(block_s), j : j + len(block_d)] = metres
        factor = self.traffic.factor(depart_at)
        return Matrix(
            np.ceil(durations * factor).astype(np.int64), np.ceil(distances).astype(np.int64)
        )

    async def _table(
        self, sources: Sequence[Point], destinations: Sequence[Point]
    ) -> tuple[np.ndarray, np.ndarray]:
        points = [*sources, *destinations]
        coords = ";".join(f"{p.lon:.6f},{p.lat:.6f}" for p in points)
        params = {
            "sources": ";".join(str(i) for i in range(len(sources))),
            "destinations": ";".join(str(len(sources) + j) for j in range(len(destinations))),
            "annotations": "duration,distance",
        }
        url = f"{self.base_url.rstrip('/')}/table/v1/{self.profile}/{coords}"
        try:
            response = await self.client.get(url, params=params)
        except httpx.HTTPError as exc:
            raise OsrmError(f"OSRM at {self.base_url} is unreachable: {exc}") from exc
        body = (
            response.json()
            if response.headers.get("content-type", "").startswith("application/json")
            else {}
        )
        if response.status_code != 200 or body.get("code") != "Ok":
            raise OsrmError(
                f"OSRM answered {response.status_code} {body.get('code')}: {body.get('message')}"
            )
        return _fill(body["durations"], UNREACHABLE_S), _fill(body["distances"], math.inf)


def _fill(rows: list[list[float | None]], missing: float) -> np.ndarray:
    array = np.array([[missing if v is None else v for v in row] for row in rows], dtype=float)
    if missing == math.inf:
        array[np.isinf(array)] = UNREACHABLE_S * 30  # metres for "no route": 30 m/s for a day
    return array


@dataclass
class _Block:
    """Everything known for one hour: a square matrix over every point seen, with a mask."""

    index: dict[Point, int] = field(default_factory=dict)
    durations: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int64))
    distances: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int64))
    known: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=bool))

    def grow(self, points: Sequence[Point]) -> None:
        for point in points:
            if point not in self.index:
                self.index[point] = len(self.index)
        size, have = len(self.index), self.known.shape[0]
        if size > have:
            capacity = max(size, 2 * have, 64)
            for name, dtype in (("durations", np.int64), ("distances", np.int64), ("known", bool)):
                bigger = np.zeros((capacity, capacity), dtype=dtype)
                bigger[:have, :have] = getattr(self, name)
                setattr(self, name, bigger)


@dataclass
class Cached:
    """Remembers each (from, to) pair per hour and asks the provider only for what it lacks:
    with one new stop among known ones, that is one new row and one new column."""

    provider: TravelProvider
    max_points: int = 5000  # per hour; past it the hour starts over
    blocks: dict[int, _Block] = field(default_factory=dict)
    requests: int = 0

    @property
    def name(self) -> str:
        return f"cached {self.provider.name}"

    async def matrix(
        self, sources: Sequence[Point], destinations: Sequence[Point], depart_at: datetime
    ) -> Matrix:
        hour = int(depart_at.timestamp() // 3600) % 24
        block = self.blocks.setdefault(hour, _Block())
        if len(block.index) + len(sources) + len(destinations) > self.max_points:
            block = self.blocks[hour] = _Block()
        rows, cols = list(dict.fromkeys(sources)), list(dict.fromkeys(destinations))
        block.grow([*rows, *cols])
        r = np.array([block.index[p] for p in rows], dtype=np.intp)
        c = np.array([block.index[p] for p in cols], dtype=np.intp)
        missing = ~block.known[np.ix_(r, c)]
        if missing.any():
            lacking_rows = missing.all(axis=1)  # points never asked from: whole rows
            await self._fetch(block, [rows[i] for i in np.flatnonzero(lacking_rows)], cols,
                              depart_at)  # fmt: skip
            rest = missing & ~lacking_rows[:, None]
            if rest.any():  # known rows that lack some columns: just those columns
                need_rows = [rows[i] for i in np.flatnonzero(rest.any(axis=1))]
                need_cols = [cols[j] for j in np.flatnonzero(rest.any(axis=0))]
                await self._fetch(block, need_rows, need_cols, depart_at)
        si = np.array([block.index[p] for p in sources], dtype=np.intp)
        di = np.array([block.index[p] for p in destinations], dtype=np.intp)
        return Matrix(block.durations[np.ix_(si, di)], block.distances[np.ix_(si, di)])

    async def _fetch(
        self, block: _Block, rows: list[Point], cols: list[Point], depart_at: datetime
    ) -> None:
        if not rows or not cols:
            return
        self.requests += 1
        fresh = await self.provider.matrix(rows, cols, depart_at)
        r = np.array([block.index[p] for p in rows], dtype=np.intp)
        c = np.array([block.index[p] for p in cols], dtype=np.intp)
        block.durations[np.ix_(r, c)] = fresh.durations
        block.distances[np.ix_(r, c)] = fresh.distances
        block.known[np.ix_(r, c)] = True


def provider_from_settings(
    settings: RoutingSettings,
    osrm_url: str | None,
    zone: str,
    client: httpx.AsyncClient | None = None,
) -> Cached:
    """The configured provider: OSRM when a URL is set, else straight lines; always cached."""
    traffic = TrafficProfile.parse(settings.traffic, zone)
    if osrm_url:
        return Cached(Osrm(osrm_url, client or httpx.AsyncClient(timeout=30), traffic=traffic))
    return Cached(StraightLine(settings.speed_kmh, settings.detour_factor, traffic))
