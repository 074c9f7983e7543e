"""Travel times: straight lines with traffic, OSRM's table service over HTTP, and the cache."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from urllib.parse import parse_qs, urlsplit

import httpx
import numpy as np
import pytest

from core.config import RoutingSettings
from core.errors import DomainError
from core.routing.travel import (
    UNREACHABLE_S,
    Cached,
    Osrm,
    OsrmError,
    Point,
    StraightLine,
    TrafficProfile,
    provider_from_settings,
)
from tests.conftest import free_port, serve
from tests.fakes.osrm import create_fake_osrm, road_metres

NOON = datetime(2026, 11, 24, 11, tzinfo=UTC)  # 12:00 in Berlin
RUSH = datetime(2026, 11, 24, 7, 30, tzinfo=UTC)  # 08:30 in Berlin
BERLIN = [Point(52.52, 13.405), Point(52.5, 13.45), Point(52.55, 13.35), Point(52.48, 13.3)]


async def test_straight_line_times_round_up_and_slow_down_in_rush_hour():
    traffic = TrafficProfile.parse("7-9:1.5, 16-19:1.4", "Europe/Berlin")
    provider = StraightLine(speed_kmh=36, detour=1.25, traffic=traffic)
    a, b = Point(52.52, 13.405), Point(52.53, 13.405)  # about 1.11 km apart
    noon = await provider.matrix([a, b], [a, b], NOON)
    metres = 1.25 * 6_371_008.8 * math.radians(0.01)
    assert noon.distances[0, 1] == math.ceil(metres)
    assert noon.durations[0, 1] == math.ceil(metres / 10)  # 36 km/h = 10 m/s
    assert noon.durations[0, 0] == 0 and noon.durations.dtype == np.int64
    rush = await provider.matrix([a, b], [a, b], RUSH)
    assert rush.durations[0, 1] == math.ceil(metres / 10 * 1.5)
    assert rush.distances[0, 1] == noon.distances[0, 1]
    # no hour: free flow, whatever the profile (the routing problem then times each leg)
    rush_traffic = StraightLine(speed_kmh=36, detour=1.25, traffic=TrafficProfile.parse("0-24:2"))
    free = await rush_traffic.matrix([a, b], [a, b], None)
    assert free.durations[0, 1] == noon.durations[0, 1]
    cached = Cached(rush_traffic)
    assert cached.traffic is rush_traffic.traffic
    assert (await cached.matrix([a, b], [a, b], None)).durations[0, 1] == noon.durations[0, 1]
    at_noon = await cached.matrix([a, b], [a, b], NOON)  # another hour of the cache
    assert at_noon.durations[0, 1] == math.ceil(metres / 10 * 2)


@pytest.mark.parametrize("text", ["7-9", "9-7:1.2", "7-25:1.2", "7-9:0", "rush:2"])
def test_bad_traffic_profiles_are_refused(text: str):
    with pytest.raises(DomainError, match=r"is not like 7-9:1\.4"):
        TrafficProfile.parse(text)


def test_bad_points_are_refused():
    with pytest.raises(DomainError, match="is not a point on Earth"):
        Point(91, 0)


async def test_osrm_table_over_http_in_blocks():
    app = create_fake_osrm(max_table=2)
    points = [*BERLIN, Point(52.45, 13.5), Point(81.0, 10.0)]  # the last one has no road
    async with serve(app) as base, httpx.AsyncClient() as client:
        osrm = Osrm(base, client, max_table=2)
        matrix = await osrm.matrix(points, points, NOON)
    assert len(app.state.requests) == 9  # 6×6 in 2×2 blocks: the limit allows 2² pairs
    for i, p in enumerate(points[:5]):
        for j, q in enumerate(points[:5]):
            metres = road_metres((p.lon, p.lat), (q.lon, q.lat))
            assert matrix.distances[i, j] == math.ceil(round(metres, 1))
            assert matrix.durations[i, j] == math.ceil(round(metres * 0.1, 1))
    assert matrix.durations[0, 5] == UNREACHABLE_S and matrix.durations[5, 0] == UNREACHABLE_S


async def test_osrm_errors_are_reported():
    app = create_fake_osrm(max_table=100)
    async with serve(app) as base, httpx.AsyncClient() as client:
        with pytest.raises(OsrmError, match="InvalidOptions"):
            await Osrm(base, client, profile="boat").matrix(BERLIN, BERLIN, NOON)
        with pytest.raises(OsrmError, match="TooBig"):  # a server stricter than we were told
            await Osrm(base, client, max_table=1000).matrix(BERLIN * 30, BERLIN * 30, NOON)
    async with httpx.AsyncClient() as client:
        with pytest.raises(OsrmError, match="unreachable"):
            await Osrm(f"http://127.0.0.1:{free_port()}", client).matrix(BERLIN, BERLIN, NOON)


async def test_the_cache_asks_only_for_what_it_lacks():
    app = create_fake_osrm()
    async with serve(app) as base, httpx.AsyncClient() as client:
        cached = Cached(Osrm(base, client))
        first = await cached.matrix(BERLIN, BERLIN, NOON)
        assert len(app.state.requests) == 1
        again = await cached.matrix(BERLIN, BERLIN, NOON)
        assert len(app.state.requests) == 1
        assert (first.durations == again.durations).all()
        bigger = [*BERLIN, Point(52.45, 13.5)]
        grown = await cached.matrix(bigger, bigger, NOON)
        new_calls = app.state.requests[1:]
        assert len(new_calls) == 2  # one new row (5 wide), one new column (4 high)
        assert (grown.durations[:4, :4] == first.durations).all()
        direct = await Osrm(base, client).matrix(bigger, bigger, NOON)
        assert (grown.durations == direct.durations).all()
        assert (grown.distances == direct.distances).all()
        await cached.matrix(bigger, bigger, RUSH)  # another hour: asked again
        assert len(app.state.requests) == 5


def city(n: int, seed: int = 1) -> list[Point]:
    """`n` distinct points scattered over about 20 × 20 km of Berlin."""
    rng = np.random.default_rng(seed)
    lat, lon = rng.uniform(52.42, 52.60, n), rng.uniform(13.25, 13.55, n)
    return [Point(float(a), float(b)) for a, b in zip(lat, lon, strict=True)]


async def test_one_more_point_among_two_thousand_asks_only_for_its_row_and_column():
    app = create_fake_osrm(max_table=500)
    known, new = city(2000), Point(52.5, 13.4)
    async with serve(app) as base, httpx.AsyncClient(timeout=60) as client:
        cached = Cached(Osrm(base, client, max_table=500))
        first = await cached.matrix(known, known, NOON)
        warm = len(app.state.requests)
        assert warm == 16  # 2,000 × 2,000 in 500 × 500 blocks
        grown = await cached.matrix([*known, new], [*known, new], NOON)
        asked = app.state.requests[warm:]
        sizes = [
            (len(parse_qs(urlsplit(url).query)["sources"][0].split(";")),
             len(parse_qs(urlsplit(url).query)["destinations"][0].split(";")))
            for url in asked
        ]  # fmt: skip
        # the new row (1 × 2,001) and the new column (2,000 × 1): nothing it already had
        assert sum(s * d for s, d in sizes) == 2001 + 2000, sizes[:5]
        assert len(asked) <= 6  # each in requests of at most 2 × 500 points
        assert (grown.durations[:2000, :2000] == first.durations).all()
        direct = await Osrm(base, client, max_table=500).matrix([new], known, NOON)
        assert (grown.durations[2000, :2000] == direct.durations[0]).all()
        again = len(app.state.requests)
        await cached.matrix(known[:10], known[-10:], NOON)  # known pairs: nothing asked
        assert len(app.state.requests) == again


async def test_the_cache_stays_within_its_bound():
    app = create_fake_osrm()
    first, second = city(8, seed=2), city(8, seed=3)
    async with serve(app) as base, httpx.AsyncClient() as client:
        cached = Cached(Osrm(base, client), max_points=10)
        await cached.matrix(first, first, NOON)
        await cached.matrix(first, first, RUSH)  # another hour: the older one goes
        assert list(cached.blocks) == [RUSH.hour] and len(app.state.requests) == 2
        await cached.matrix(second, second, RUSH)  # 16 points in one hour: keeps these 8
        assert len(app.state.requests) == 3 and cached.nbytes <= 10**2 * 9
        before = await cached.matrix(second[:3], second[:3], RUSH)
        assert len(app.state.requests) == 3
        await cached.matrix([*second, first[0]], [*second, first[0]], RUSH)
        assert len(app.state.requests) == 5  # the returning point's row and column only
        again = await cached.matrix(second[:3], second[:3], RUSH)
        assert (again.durations == before.durations).all() and cached.nbytes <= 10**2 * 9


async def test_settings_choose_the_provider():
    settings = RoutingSettings(speed_kmh=30, detour_factor=1.2, traffic="16-19:2")
    plain = provider_from_settings(settings, None, "Europe/Berlin")
    assert plain.name == "cached straight-line"
    async with httpx.AsyncClient() as client:
        road = provider_from_settings(settings, "http://127.0.0.1:5000", "UTC", client)
        assert road.name == "cached osrm"
