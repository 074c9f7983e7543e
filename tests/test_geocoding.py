"""Geocoding: the real geopy Nominatim client over HTTP against a fake Nominatim on 127.0.0.1,
with the cache in the test database (SQLite, and PostgreSQL when TEST_POSTGRES_URL is set)."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime, timedelta

import pytest
from sqlmodel import select

from core.config import GeocodingSettings
from core.db import Database
from core.errors import DomainError
from core.geo.geocoding import (
    MAX_LABEL_CHARS,
    Geocoder,
    Place,
    parse_pin,
    short_label,
)
from core.models import GeocodeCacheEntry
from tests.conftest import serve
from tests.fakes.nominatim import FakeNominatim

LINDEN = "10, Unter den Linden, Dorotheenstadt, Mitte, Berlin, 10117, Deutschland"
T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)

MakeGeocoder = Callable[..., Geocoder]


@pytest.fixture
async def nominatim() -> AsyncIterator[FakeNominatim]:
    fake = FakeNominatim()
    async with serve(fake.app) as url:
        fake.url = url
        yield fake


@pytest.fixture
async def make_geocoder(db: Database, nominatim: FakeNominatim) -> AsyncIterator[MakeGeocoder]:
    made: list[Geocoder] = []

    def make(*, min_interval_s: float = 0.0, **kwargs: object) -> Geocoder:
        settings = GeocodingSettings(
            url=nominatim.url,  # type: ignore[arg-type]
            user_agent="lastmile-tests",
            min_interval_s=min_interval_s,
        )
        geocoder = Geocoder(db, settings, **kwargs)  # type: ignore[arg-type]
        made.append(geocoder)
        return geocoder

    yield make
    for geocoder in made:
        await geocoder.close()


async def cache_rows(db: Database) -> list[GeocodeCacheEntry]:
    async with db.sessions() as session:
        return list(await session.exec(select(GeocodeCacheEntry)))


async def test_one_match(make_geocoder: MakeGeocoder, nominatim: FakeNominatim, db: Database):
    nominatim.add("Unter den Linden 10, Berlin", (LINDEN, 52.5170365, 13.3888599))

    places = await make_geocoder().search("  unter den   Linden 10,\tBERLIN ")

    assert places == [Place(label=LINDEN, lat=52.5170365, lon=13.3888599)]
    [request] = nominatim.requests
    assert request.params["q"] == "unter den Linden 10, BERLIN"  # collapsed, case kept
    assert request.params["format"] == "json"
    assert "countrycodes" not in request.params
    assert request.user_agent == "lastmile-tests"
    [row] = await cache_rows(db)
    assert (row.provider, row.query) == ("nominatim", "unter den linden 10, berlin")
    assert row.results == [{"label": LINDEN, "lat": 52.5170365, "lon": 13.3888599}]


async def test_three_matches_limit_and_duplicates(
    make_geocoder: MakeGeocoder, nominatim: FakeNominatim
):
    nominatim.add(
        "Hauptstraße 5",
        ("5, Hauptstraße, Alt-Tegel, Berlin, Deutschland", 52.5890, 13.2830),
        ("Hauptstraße 5, Tegel, Berlin, Deutschland", 52.58915, 13.28305),  # ~17 m away
        ("5, Hauptstraße, Schöneberg, Berlin, Deutschland", 52.4870, 13.3550),
        ("5, Hauptstraße, Potsdam, Brandenburg, Deutschland", 52.3990, 13.0650),
        ("5, Hauptstraße, Leipzig, Sachsen, Deutschland", 51.3400, 12.3700),
    )
    geocoder = make_geocoder()

    places = await geocoder.search("Hauptstraße 5", limit=3)

    assert [(p.lat, p.lon) for p in places] == [
        (52.5890, 13.2830),
        (52.4870, 13.3550),
        (52.3990, 13.0650),
    ]
    assert places[1].label == "5, Hauptstraße, Schöneberg, Berlin, Deutschland"
    assert await geocoder.search("hauptstraße 5", limit=1) == places[:1]  # from the cache
    assert await geocoder.search("HAUPTSTRASSE 5") == places  # casefold: ß → ss
    assert len(places) == 3 and len(nominatim.requests) == 1
    assert nominatim.requests[0].params["limit"] == "10"  # one cached answer serves any limit


async def test_no_match_is_cached(
    make_geocoder: MakeGeocoder, nominatim: FakeNominatim, db: Database
):
    geocoder = make_geocoder()

    assert await geocoder.search("Nowhere Lane 99") == []
    assert await geocoder.search("nowhere lane 99") == []

    assert nominatim.queries == ["Nowhere Lane 99"]
    [row] = await cache_rows(db)
    assert row.results == []


async def test_cache_hit_makes_no_request_and_survives_a_new_geocoder(
    make_geocoder: MakeGeocoder, nominatim: FakeNominatim
):
    nominatim.add("Main St 1", ("1, Main Street, Springfield, United States", 39.80, -89.64, "us"))
    first = await make_geocoder().search("Main St 1")
    nominatim.places.clear()  # the provider would now answer [], so a request would show

    again = await make_geocoder().search("main st 1")  # another process, same database

    assert again == first and len(first) == 1
    assert len(nominatim.requests) == 1


async def test_cache_expiry_miss_after_a_day_hit_after_30_days(
    make_geocoder: MakeGeocoder, nominatim: FakeNominatim
):
    now = [T0]
    geocoder = make_geocoder(clock=lambda: now[0])
    assert await geocoder.search("Gartenweg 3") == []
    nominatim.add("Gartenweg 3", ("3, Gartenweg, Köln, Deutschland", 50.94, 6.96))

    now[0] = T0 + timedelta(hours=23)
    assert await geocoder.search("Gartenweg 3") == []  # the miss is still cached
    assert len(nominatim.requests) == 1

    now[0] = T0 + timedelta(days=1, minutes=1)
    [found] = await geocoder.search("Gartenweg 3")  # the miss expired: asked again
    assert (found.lat, found.lon) == (50.94, 6.96)
    assert len(nominatim.requests) == 2

    nominatim.places.clear()
    now[0] = T0 + timedelta(days=30)
    assert await geocoder.search("Gartenweg 3") == [found]  # a hit is kept 30 days
    assert len(nominatim.requests) == 2
    now[0] = T0 + timedelta(days=31, minutes=2)
    assert await geocoder.search("Gartenweg 3") == []
    assert len(nominatim.requests) == 3


async def test_region_is_sent_as_countrycodes(
    make_geocoder: MakeGeocoder, nominatim: FakeNominatim, db: Database
):
    nominatim.add(
        "Springfield",
        ("Springfield, Sangamon County, Illinois, United States", 39.7990, -89.6440, "us"),
        ("Springfield, Chelmsford, Essex, England, United Kingdom", 51.7440, 0.4870, "gb"),
    )

    in_us = await make_geocoder(region="US").search("Springfield")
    everywhere = await make_geocoder().search("Springfield")

    assert [r.params.get("countrycodes") for r in nominatim.requests] == ["us", None]
    assert in_us == [Place("Springfield, Sangamon County, Illinois", 39.7990, -89.6440)]
    assert len(everywhere) == 2 and everywhere[1].label.endswith("United Kingdom")
    assert sorted(row.provider for row in await cache_rows(db)) == ["nominatim", "nominatim:us"]


async def test_rate_limit_spaces_provider_requests(
    make_geocoder: MakeGeocoder, nominatim: FakeNominatim
):
    geocoder = make_geocoder(min_interval_s=0.2)

    await geocoder.search("First Street 1")
    await geocoder.search("Second Street 2")

    first, second = nominatim.requests
    assert second.at - first.at >= 0.2


async def test_cache_hits_do_not_wait_for_the_rate_limit(
    make_geocoder: MakeGeocoder, nominatim: FakeNominatim
):
    geocoder = make_geocoder(min_interval_s=3.0)
    await geocoder.search("First Street 1")

    started = time.monotonic()
    assert await geocoder.search("first street 1") == []
    assert time.monotonic() - started < 1.5
    assert len(nominatim.requests) == 1


async def test_provider_503_is_unavailable_and_not_cached(
    make_geocoder: MakeGeocoder,
    nominatim: FakeNominatim,
    db: Database,
    caplog: pytest.LogCaptureFixture,
):
    nominatim.add("Unter den Linden 10", (LINDEN, 52.5170365, 13.3888599))
    nominatim.fail_next(1, status=503)
    geocoder = make_geocoder()

    with (
        caplog.at_level(logging.WARNING, logger="core.geo.geocoding"),
        pytest.raises(DomainError) as error,
    ):
        await geocoder.search("Unter den Linden 10")
    assert error.value.key == "geocoding.unavailable"
    assert "send a location pin instead" in str(error.value)
    assert await cache_rows(db) == []
    assert any("Unter den Linden 10" in r.getMessage() for r in caplog.records)

    [place] = await geocoder.search("Unter den Linden 10")  # the retry asks again and succeeds
    assert place.lat == 52.5170365
    assert len(nominatim.requests) == 2


async def test_broken_json_is_unavailable_and_not_cached(
    make_geocoder: MakeGeocoder, nominatim: FakeNominatim, db: Database
):
    nominatim.break_next(1)

    with pytest.raises(DomainError, match="not answering") as error:
        await make_geocoder().search("Somewhere 1")

    assert error.value.key == "geocoding.unavailable"
    assert await cache_rows(db) == []


async def test_timeout_is_unavailable(
    make_geocoder: MakeGeocoder, nominatim: FakeNominatim, db: Database
):
    nominatim.delay_s = 1.0
    geocoder = make_geocoder(timeout_s=0.2)

    started = time.monotonic()
    with pytest.raises(DomainError) as error:
        await geocoder.search("Slow Road 1")

    assert error.value.key == "geocoding.unavailable"
    assert time.monotonic() - started < 0.9
    assert len(nominatim.requests) == 1
    assert await cache_rows(db) == []


@pytest.mark.parametrize(
    ("text", "point"),
    [
        ("52.52, 13.405", (52.52, 13.405)),
        ("52.52 13.405", (52.52, 13.405)),
        (" -33.8688,151.2093 ", (-33.8688, 151.2093)),
        ("40.7128; -74.006", (40.7128, -74.006)),
        ("95, 13", None),
        ("52, 181", None),
        ("0,0", None),
        ("0.0 0.0", None),
        ("Hauptstraße 5, 10115", None),
        ("52.52", None),
        ("52.52, 13.405, 7", None),
    ],
)
def test_parse_pin(text: str, point: tuple[float, float] | None):
    assert parse_pin(text) == point


async def test_typed_coordinates_need_no_request(
    make_geocoder: MakeGeocoder, nominatim: FakeNominatim
):
    geocoder = make_geocoder()

    assert await geocoder.locate("52.52, 13.405") == [Place("52.52, 13.405", 52.52, 13.405)]
    assert await geocoder.locate("52.52 13.405") == [Place("52.52 13.405", 52.52, 13.405)]
    assert nominatim.requests == []


async def test_bad_typed_coordinates_are_searched_as_text(
    make_geocoder: MakeGeocoder, nominatim: FakeNominatim
):
    nominatim.add("95, 13", ("95, Rue 13, Paris, France", 48.85, 2.35, "fr"))
    geocoder = make_geocoder()

    [found] = await geocoder.locate("95, 13")
    assert await geocoder.locate("0,0") == []

    assert (found.lat, found.lon) == (48.85, 2.35)
    assert nominatim.queries == ["95, 13", "0,0"]


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("", "geocoding.empty"),
        ("  \n\t ", "geocoding.empty"),
        ("x" * 600, "geocoding.too_long"),
        ("ß" * 300, "geocoding.too_long"),  # 600 characters once case-folded
    ],
)
async def test_unusable_text_is_refused(
    make_geocoder: MakeGeocoder, nominatim: FakeNominatim, text: str, key: str
):
    with pytest.raises(DomainError) as error:
        await make_geocoder().locate(text)

    assert error.value.key == key
    assert "location pin" in str(error.value)
    assert nominatim.requests == []


async def test_longest_allowed_text_is_searched(
    make_geocoder: MakeGeocoder, nominatim: FakeNominatim, db: Database
):
    assert await make_geocoder().search("a" * 500) == []
    assert len(nominatim.requests) == 1
    [row] = await cache_rows(db)
    assert len(row.query) == 500


async def test_limit_out_of_range_is_a_programming_error(make_geocoder: MakeGeocoder):
    with pytest.raises(ValueError, match="limit"):
        await make_geocoder().search("Main St 1", limit=0)


def test_short_label_keeps_the_specific_parts():
    long_name = ", ".join(["1", "Very Long Street Name"] + [f"District {i:02}" for i in range(20)])

    label = short_label(long_name)

    assert len(long_name) > MAX_LABEL_CHARS >= len(label)
    assert label.startswith("1, Very Long Street Name, District 00")
    assert long_name.startswith(label + ",")  # cut at a part boundary
    assert short_label("Berlin, Berlin, Deutschland") == "Berlin, Deutschland"
    assert short_label(LINDEN, drop_country=True) == LINDEN.removesuffix(", Deutschland")
    assert short_label("x" * 200) == "x" * (MAX_LABEL_CHARS - 1) + "…"
