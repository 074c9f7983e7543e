"""Text address → up to 3 candidate map points, cached in the database, rate-limited.

Nominatim through geopy's async adapter (aiohttp). A location pin in chat always beats text, so
`locate()` takes typed coordinates ("52.52, 13.405") as a point without asking anybody, and "no
result" is an empty list, not an error: the chat then asks for a pin.

`name_point()` is the other way round: the address at a map point (a dropped pin), or None.

Cache: one row per (provider, case-folded query); a point's name is cached under the provider
key with ":reverse" and the point to 5 decimals (about a metre). Hits are kept 30 days, misses
1 day; failures are never cached. The provider key carries the region bias ("nominatim:de"),
because the same text gives different answers with and without it. The provider is always asked
for `FETCH_LIMIT` results, so a cached row serves any `limit`.

Rate limit: one request at a time per Geocoder, and the next one starts at least
`min_interval_s` after the previous one *ended* (Nominatim's policy is 1 request/s). Build one
Geocoder per process.
"""

from __future__ import annotations

import asyncio
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import asdict, dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

from geopy.adapters import AioHTTPAdapter
from geopy.exc import GeopyError
from geopy.geocoders import Nominatim
from geopy.location import Location
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import select

from core.clock import Clock
from core.config import GeocodingSettings
from core.db import Database
from core.errors import DomainError
from core.models import GeocodeCacheEntry
from core.routing.travel import Point, straight_m

log = logging.getLogger(__name__)

MAX_QUERY_CHARS = 500  # the cache's query column
MAX_LABEL_CHARS = 120
FETCH_LIMIT = 10  # Nominatim's own default; we return at most this many
HIT_TTL = timedelta(days=30)
MISS_TTL = timedelta(days=1)
SAME_POINT_M = 30.0

_NUMBER = r"([+-]?\d{1,3}(?:\.\d+)?)"
_PIN = re.compile(rf"^\s*{_NUMBER}\s*(?:[,;]\s*|\s+){_NUMBER}\s*$")


@dataclass(frozen=True)
class Place:
    label: str  # display name, shortened to something readable (≤ 120 chars)
    lat: float
    lon: float


def parse_pin(text: str) -> tuple[float, float] | None:
    """Typed coordinates, "lat, lon" or "lat lon", as (lat, lon); None if `text` is not one.

    Out-of-range values and 0,0 (what a broken GPS sends) are not a point.
    """
    match = _PIN.match(text)
    if match is None:
        return None
    lat, lon = float(match[1]), float(match[2])
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or (lat == 0 and lon == 0):
        return None
    return lat, lon


def normalize(text: str) -> str:
    """Strip and collapse white space; refuse empty and over-long text."""
    query = " ".join(text.split())
    if not query:
        raise DomainError("geocoding.empty")
    if len(query.casefold()) > MAX_QUERY_CHARS:  # casefold can grow a text ("ß" → "ss")
        raise DomainError("geocoding.too_long", limit=MAX_QUERY_CHARS)
    return query


def short_label(display_name: str, *, drop_country: bool = False) -> str:
    """The leading parts of a Nominatim display name that fit in MAX_LABEL_CHARS.

    Parts run from specific to broad ("10, Unter den Linden, Mitte, Berlin, 10117, Deutschland"),
    so the broad tail is what gets cut. With a region bias the country (last part) says nothing.
    """
    parts: list[str] = []
    for part in (p.strip() for p in display_name.split(",")):
        if part and (not parts or parts[-1] != part):
            parts.append(part)
    if drop_country and len(parts) > 2:
        parts.pop()
    label = ""
    for part in parts:
        candidate = f"{label}, {part}" if label else part
        if len(candidate) > MAX_LABEL_CHARS:
            break
        label = candidate
    if not label and parts:
        label = parts[0][: MAX_LABEL_CHARS - 1].rstrip() + "…"
    return label


def _places(locations: list[Location], *, drop_country: bool) -> list[Place]:
    """Provider answers as places, in the provider's order, without near-duplicates."""
    places: list[Place] = []
    for location in locations:
        lat, lon = location.latitude, location.longitude
        if not (math.isfinite(lat) and math.isfinite(lon) and abs(lat) <= 90 and abs(lon) <= 180):
            continue
        if any(straight_m(Point(p.lat, p.lon), Point(lat, lon)) < SAME_POINT_M for p in places):
            continue
        raw = location.raw if isinstance(location.raw, dict) else {}
        name = str(raw.get("display_name") or location.address or "")
        label = short_label(name, drop_country=drop_country) or f"{lat:.5f}, {lon:.5f}"
        places.append(Place(label=label, lat=lat, lon=lon))
    return places


class Geocoder:
    def __init__(
        self,
        db: Database,
        settings: GeocodingSettings,
        *,
        region: str | None = None,
        timeout_s: float = 5.0,
        clock: Clock | None = None,
    ) -> None:
        self._db = db
        self._min_interval_s = settings.min_interval_s
        self._region = region.lower() if region else None
        self._provider = settings.provider + (f":{self._region}" if self._region else "")
        self._clock: Clock = clock or db.now
        url = urlsplit(str(settings.url))
        self._geolocator = Nominatim(
            domain=url.netloc + url.path.rstrip("/"),
            scheme=url.scheme,
            user_agent=settings.user_agent,
            timeout=timeout_s,
            adapter_factory=AioHTTPAdapter,
        )
        self._host = url.netloc
        self._exit = AsyncExitStack()
        self._opened = False
        self._lock = asyncio.Lock()
        self._last_request_end: float | None = None

    async def __aenter__(self) -> Geocoder:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP session (if a request opened one)."""
        await self._exit.aclose()
        self._opened = False

    async def locate(self, text: str, *, limit: int = 3) -> list[Place]:
        """Typed coordinates as one place (no request); anything else through `search`."""
        pin = parse_pin(text)
        if pin is not None:
            return [Place(label=" ".join(text.split()), lat=pin[0], lon=pin[1])]
        return await self.search(text, limit=limit)

    async def search(self, text: str, *, limit: int = 3) -> list[Place]:
        """Up to `limit` candidate places for an address; [] when nothing matches.

        Raises DomainError geocoding.empty / geocoding.too_long for unusable text and
        geocoding.unavailable when the provider fails (not cached; a later call asks again).
        """
        if not 1 <= limit <= FETCH_LIMIT:
            raise ValueError(f"limit must be between 1 and {FETCH_LIMIT}, not {limit}")
        query = normalize(text)

        async def ask() -> list[Location]:
            return await self._geolocator.geocode(
                query, exactly_one=False, limit=FETCH_LIMIT, country_codes=self._region
            )

        places = await self._once(self._provider, query.casefold(), ask, query)
        return places[:limit]

    async def name_point(self, lat: float, lon: float) -> str | None:
        """The address at a map point, or None when the provider knows none or is not
        answering (a pin is a good enough place without a name)."""

        async def ask() -> list[Location]:
            found = await self._geolocator.reverse((lat, lon), exactly_one=True, zoom=18)
            return [found] if found else []

        point = f"{lat:.5f},{lon:.5f}"
        try:
            places = await self._once(f"{self._provider}:reverse", point, ask, point)
        except DomainError:  # geocoding.unavailable, logged
            return None
        return places[0].label if places else None

    async def _once(
        self, provider: str, key: str, ask: Callable[[], Awaitable[list[Location]]], query: str
    ) -> list[Place]:
        """The cached answer for `key`, else the provider's (asked one at a time), cached."""
        places = await self._cached(provider, key)
        if places is None:
            async with self._lock:
                places = await self._cached(provider, key)  # asked while we waited?
                if places is None:
                    places = await self._ask_provider(ask, query)
                    await self._save(provider, key, places)
        return places

    async def _cached(self, provider: str, key: str) -> list[Place] | None:
        statement = select(GeocodeCacheEntry).where(
            GeocodeCacheEntry.provider == provider, GeocodeCacheEntry.query == key
        )
        async with self._db.reads() as session:
            entry = (await session.exec(statement)).first()
        if entry is None:
            return None
        if self._clock() - entry.created_at >= (HIT_TTL if entry.results else MISS_TTL):
            return None
        try:
            return [Place(str(r["label"]), float(r["lat"]), float(r["lon"])) for r in entry.results]
        except (KeyError, TypeError, ValueError):
            log.warning("geocoding: unreadable cache entry %s for %r; asking again", entry.id, key)
            return None

    async def _ask_provider(
        self, ask: Callable[[], Awaitable[list[Location]]], query: str
    ) -> list[Place]:
        if self._last_request_end is not None:
            wait = self._last_request_end + self._min_interval_s - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
        started = time.monotonic()
        try:
            if not self._opened:
                await self._exit.enter_async_context(self._geolocator)
                self._opened = True
            locations = await ask()
        except (GeopyError, ValueError, TypeError, KeyError) as exc:
            log.warning(
                "geocoding: %s at %s failed after %.1f s for %r (region %s): %s: %s",
                self._provider,
                self._host,
                time.monotonic() - started,
                query,
                self._region,
                type(exc).__name__,
                exc,
                exc_info=not isinstance(exc, GeopyError),
            )
            raise DomainError("geocoding.unavailable") from exc
        finally:
            self._last_request_end = time.monotonic()
        return _places(locations or [], drop_country=self._region is not None)

    async def _save(self, provider: str, key: str, places: list[Place]) -> None:
        """Upsert the cache row; a failure to cache is logged, the answer is still given."""
        values: dict[str, Any] = {
            "provider": provider,
            "query": key,
            "results": [asdict(place) for place in places],
            "created_at": self._clock(),
        }
        dialect = self._db.engine.dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = insert(GeocodeCacheEntry).values(**values)
        statement = statement.on_conflict_do_update(
            index_elements=["provider", "query"],
            set_={
                "results": statement.excluded.results,
                "created_at": statement.excluded.created_at,
            },
        )
        try:
            async with self._db.transaction() as session:
                await session.exec(statement)
        except SQLAlchemyError:
            log.exception("geocoding: could not cache the answer for %r", key)
