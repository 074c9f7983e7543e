"""One Settings object, read from the environment and `.env`.

Environment names are `<GROUP>_<FIELD>` in capitals: `DATABASE_URL`, `TELEGRAM_BOT_TOKEN`,
`APP_TIMEZONE`. Nothing is read at import time; call `load_settings()`.
"""

from __future__ import annotations

import json
import re
from datetime import time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from pydantic import (
    AnyHttpUrl,
    BaseModel,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict, SettingsError

from core.geo.traffic import parse_factors
from core.validation import describe

BUCKET = re.compile(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]")
PREFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*(?:/[A-Za-z0-9][A-Za-z0-9._-]*)*")


class SettingsProblem(Exception):
    """A setting is missing or invalid; `str()` is one line naming the key."""


class AppSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    base_url: AnyHttpUrl = AnyHttpUrl("http://127.0.0.1:8000")
    data_dir: Path = Path("data")
    timezone: str = "UTC"
    language: str = "en"
    phone_region: str | None = None
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    secret_key: SecretStr | None = None  # signs expiring links; made in data_dir when unset
    proof_link_minutes: float = Field(default=60.0, gt=0, le=7 * 24 * 60)
    sign_link_minutes: float = Field(default=30.0, gt=0, le=24 * 60)  # the signature pad's link
    board_link_minutes: float = Field(default=720.0, gt=0, le=7 * 24 * 60)  # the live board's
    driver_link_hours: float = Field(default=16.0, gt=0, le=7 * 24)  # the driver's page link
    conversation_minutes: float = Field(default=360.0, gt=0, le=7 * 24 * 60)

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            message = f"is not a known time zone ({value!r}; use an IANA name like Europe/Berlin)"
            raise ValueError(message) from None
        return value

    @field_validator("phone_region")
    @classmethod
    def _known_region(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        region = value.upper()
        if region not in phonenumbers.SUPPORTED_REGIONS:
            raise ValueError(f"is not a known region ({value!r}; use a country code like DE)")
        return region


class DatabaseSettings(BaseModel):
    url: str | None = None
    echo: bool = False
    # PostgreSQL connections one process keeps open, and how many more it may open when busy:
    # several instances need max_connections >= instances x (pool_size + max_overflow)
    pool_size: int = Field(default=20, ge=1, le=500)
    max_overflow: int = Field(default=20, ge=0, le=500)

    @field_validator("url")
    @classmethod
    def _supported_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        return normalize_database_url(value.strip())


class RedisSettings(BaseModel):
    url: str | None = None

    @field_validator("url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        if value:
            problem = redis_url_problem(value)
            if problem:
                raise ValueError(f"is not a Redis URL like redis://127.0.0.1:6379/0 ({problem})")
        return value or None


class StorageSettings(BaseModel):
    """Where files live: unset, under APP_DATA_DIR; `s3://bucket/prefix`, in an S3-compatible
    object store (several instances share it)."""

    url: str | None = None
    s3_endpoint_url: AnyHttpUrl | None = None  # unset: AWS itself
    s3_region: str = "us-east-1"
    s3_access_key: SecretStr | None = None  # unset: boto3's own lookup (environment, profile)
    s3_secret_key: SecretStr | None = Field(default=None, validate_default=True)
    timeout_s: float = Field(default=5.0, gt=0, le=120)  # connect and read, per attempt
    retry_s: float = Field(default=10.0, gt=0, le=3600)  # spooled files: upload tried again

    @field_validator("url")
    @classmethod
    def _s3_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        value = value.strip()
        scheme, sep, rest = value.partition("://")
        if not sep or scheme.lower() != "s3":
            raise ValueError(
                "is not an object store URL: use s3://bucket or s3://bucket/prefix "
                "(leave it unset to keep files under APP_DATA_DIR)"
            )
        bucket, _, prefix = rest.partition("/")
        if not BUCKET.fullmatch(bucket) or ".." in bucket:
            raise ValueError(
                f"names a bucket that cannot be one ({bucket!r}: 3–63 lower-case letters, "
                "digits, dots and hyphens)"
            )
        prefix = prefix.strip("/")
        if prefix and not PREFIX.fullmatch(prefix):
            raise ValueError(
                f"has a prefix that cannot be one ({prefix!r}: segments of letters, digits, "
                "'.', '_' and '-' between '/', none starting with '.')"
            )
        return f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"

    @field_validator("s3_secret_key")
    @classmethod
    def _both_keys(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        access = info.data.get("s3_access_key")
        if bool(access and access.get_secret_value()) != bool(value and value.get_secret_value()):
            raise ValueError("and STORAGE_S3_ACCESS_KEY are set together, or neither")
        return value

    @property
    def bucket(self) -> str | None:
        return self.url.removeprefix("s3://").partition("/")[0] if self.url else None

    @property
    def prefix(self) -> str:
        return self.url.removeprefix("s3://").partition("/")[2] if self.url else ""


def redis_url_problem(url: str) -> str | None:
    """What is wrong with a redis://, rediss:// or unix:// URL, or None. (redis-py itself would
    quietly read a database number it cannot parse as 0: another deployment's data.)"""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return None if parts.path else "no socket path"
    try:
        _ = parts.port  # reading it checks it
    except ValueError:
        return "the port is not a number from 0 to 65535"
    if not parts.hostname:
        return "no host"
    db = parts.path.strip("/") or "0"
    if not db.isdigit():
        return f"the database {db!r} is not a number"
    return None


class TelegramSettings(BaseModel):
    bot_token: SecretStr | None = None
    bot_username: str | None = None
    api_url: AnyHttpUrl = AnyHttpUrl("https://api.telegram.org")
    mode: Literal["polling", "webhook"] = "polling"
    webhook_secret: SecretStr | None = Field(default=None, validate_default=True)
    rate_per_s: float = Field(default=30.0, gt=0, le=1000)
    chat_rate_per_s: float = Field(default=1.0, gt=0, le=100)
    max_photo_mb: float = Field(default=10.0, gt=0, le=20)
    reply_retry_s: float = Field(default=30.0, gt=0, le=600)
    init_data_max_age_s: float = Field(default=3600.0, gt=0, le=24 * 3600)  # Mini App initData
    # open staff pages (the signature pad, the driver's page) as Mini Apps; unset: when
    # APP_BASE_URL is https, as Telegram opens no other
    mini_apps: bool | None = None

    @field_validator("bot_username")
    @classmethod
    def _plain_username(cls, value: str | None) -> str | None:
        if not value:
            return None
        value = value.strip().removeprefix("@")
        if not value.replace("_", "").isalnum() or not 5 <= len(value) <= 32:
            raise ValueError("must be the bot's username (5–32 letters, digits or _)")
        return value

    @field_validator("webhook_secret")
    @classmethod
    def _secret_for_webhook(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if info.data.get("mode") == "webhook" and not (value and value.get_secret_value()):
            raise ValueError("is required when TELEGRAM_MODE=webhook")
        return value

    @property
    def enabled(self) -> bool:
        return self.bot_token is not None and bool(self.bot_token.get_secret_value())


class WhatsAppTemplate(BaseModel):
    """An approved message template: its name, the languages it is approved in (the first is
    used when the recipient's is not among them) and its body parameters in order: `text` (the
    message as it would be written, on one line), `tracking_link`, or a notice's parameter
    (`order_id`, `reason`, …)."""

    name: str = Field(min_length=1, max_length=512)
    languages: list[str] = Field(default=["en"], min_length=1)
    params: list[str] = []


DEFAULT_TEMPLATE = "*"  # the key of the template for notices that have none of their own


def default_templates() -> dict[str, WhatsAppTemplate]:
    """The documented default set (README, "WhatsApp templates"): a few customer updates with
    their own template, every other notice as `lastmile_update` carrying its text."""
    order, link = ["order_id", "tracking_link"], ["order_id"]
    languages = ["en", "de"]
    specs = {
        DEFAULT_TEMPLATE: ("lastmile_update", ["text"]),
        "customer.order_confirmed": ("lastmile_order_confirmed", order),
        "customer.order_out_for_delivery": ("lastmile_order_on_its_way", order),
        "customer.order_delivered": ("lastmile_order_delivered", link),
        "customer.order_failed": ("lastmile_order_failed", link),
    }
    return {
        key: WhatsAppTemplate(name=name, languages=languages, params=params)
        for key, (name, params) in specs.items()
    }


class WhatsAppSettings(BaseModel):
    access_token: SecretStr | None = None
    phone_number_id: str | None = Field(default=None, validate_default=True)
    app_secret: SecretStr | None = Field(default=None, validate_default=True)
    verify_token: SecretStr | None = None
    api_url: AnyHttpUrl = AnyHttpUrl("https://graph.facebook.com")
    api_version: str = "v23.0"
    # sending limits of the business number, overall and per person (Meta: 80 messages a
    # second per number by default; a few a minute to one person before 131056)
    rate_per_s: float = Field(default=20.0, gt=0, le=1000)
    chat_rate_per_s: float = Field(default=1.0, gt=0, le=100)
    # notice template (or "*") -> approved template; JSON in WHATSAPP_TEMPLATES
    templates: Annotated[dict[str, WhatsAppTemplate], NoDecode] = Field(
        default_factory=default_templates
    )

    @field_validator("templates", mode="before")
    @classmethod
    def _json(cls, value: Any) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return json.loads(value)
        except ValueError:
            raise ValueError(
                'is not JSON like {"*": {"name": "lastmile_update", "params": ["text"]}}'
            ) from None

    @field_validator("templates")
    @classmethod
    def _has_default(cls, value: dict[str, WhatsAppTemplate]) -> dict[str, WhatsAppTemplate]:
        if DEFAULT_TEMPLATE not in value:
            raise ValueError(f'needs a "{DEFAULT_TEMPLATE}" entry: the template for other notices')
        return value

    # the business number in international form (+49 151 2345678): wa.me invite/subscribe links
    phone_number: str | None = None

    @field_validator("phone_number")
    @classmethod
    def _international(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        text = value.strip()
        try:
            number = phonenumbers.parse(text if text.startswith("+") else f"+{text}", None)
        except phonenumbers.NumberParseException:
            number = None
        if number is None or number.extension or not phonenumbers.is_possible_number(number):
            raise ValueError("is a phone number in international form, like +49 151 2345678")
        e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        return e164.lstrip("+")  # digits only, as wa.me wants them

    @field_validator("phone_number_id", "app_secret")
    @classmethod
    def _needed_with_token(cls, value: Any, info: ValidationInfo) -> Any:
        token = info.data.get("access_token")
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if token is not None and token.get_secret_value() and not text:
            raise ValueError("is required when WHATSAPP_ACCESS_TOKEN is set")
        return value

    @property
    def enabled(self) -> bool:
        return self.access_token is not None and bool(self.access_token.get_secret_value())


class OsrmSettings(BaseModel):
    url: AnyHttpUrl | None = None


class RoutingSettings(BaseModel):
    speed_kmh: float = Field(default=25.0, gt=0, le=150)
    detour_factor: float = Field(default=1.3, ge=1, le=3)
    traffic: str = "7-9:1.35,16-19:1.45"
    time_limit_s: float = Field(default=2.0, gt=0, le=300)
    shift_hours: float = Field(default=10.0, gt=0, le=24)
    # what a plan costs the business: paid driver time (waiting included) and fuel and wear
    cost_per_hour: float = Field(default=20.0, ge=0, le=1000)
    cost_per_km: float = Field(default=0.30, ge=0, le=100)
    # a driver rests `break_minutes` once she has worked `break_after_hours` (0: no breaks)
    break_after_hours: float = Field(default=4.5, ge=0, le=24)
    break_minutes: float = Field(default=30.0, ge=0, le=180)

    @field_validator("traffic")
    @classmethod
    def _profile(cls, value: str) -> str:
        try:
            parse_factors(value)
        except ValueError as exc:
            raise ValueError(f"is wrong: {exc}") from None
        return value


class DispatchSettings(BaseModel):
    # auto: the core places every order on arrival and re-plans by itself; manual: it waits
    # for a dispatcher's /dispatch or /assign
    mode: Literal["auto", "manual"] = "auto"
    plan_at: time = time(6, 30)  # local time when a later day's orders are planned
    reoptimize_minutes: float = Field(default=15.0, ge=0, le=24 * 60)  # 0: never periodically
    move_min_saving_minutes: float = Field(default=10.0, ge=0, le=24 * 60)


class GeocodingSettings(BaseModel):
    provider: Literal["nominatim"] = "nominatim"
    url: AnyHttpUrl = AnyHttpUrl("https://nominatim.openstreetmap.org")
    user_agent: str = "lastmile"
    min_interval_s: float = Field(default=1.0, ge=0)


class OrdersSettings(BaseModel):
    max_attempts: int = Field(default=3, ge=1, le=10)
    default_service_minutes: float = Field(default=5.0, ge=0, le=240)


class TrackingSettings(BaseModel):
    nearby_minutes: float = Field(default=5.0, ge=0, le=120)
    nearby_metres: float = Field(default=300.0, ge=0, le=10_000)
    stale_minutes: float = Field(default=10.0, gt=0, le=240)
    undo_minutes: float = Field(default=5.0, ge=0, le=60)
    page_days: float = Field(default=7.0, gt=0, le=365)
    # Leaflet 1.9.4, served by the service itself (web/static/leaflet/)
    map_js_url: str = "/static/leaflet/leaflet.js"
    map_css_url: str = "/static/leaflet/leaflet.css"
    tiles_url: str = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"


class WebhooksSettings(BaseModel):
    timeout_s: float = Field(default=10.0, gt=0, le=60)
    retry_hours: float = Field(default=24.0, gt=0, le=24 * 7)
    concurrency: int = Field(default=8, ge=1, le=100)
    require_https: bool = True
    allow_private: bool = False  # loopback, private and link-local addresses (SSRF guard)


class OutboxSettings(BaseModel):
    # how long a sender holds what it claimed (renewed while it works); a send must be over
    # within half of it
    lease_s: float = Field(default=60.0, ge=1, le=3600)

    @property
    def lease(self) -> timedelta:
        return timedelta(seconds=self.lease_s)


class NotifySettings(BaseModel):
    quiet_hours: str = ""

    @field_validator("quiet_hours")
    @classmethod
    def _hours(cls, value: str) -> str:
        from core.notify.quiet_hours import QuietHours

        QuietHours.parse(value, "UTC")  # raises ValueError with a readable message
        return value


class ReportsSettings(BaseModel):
    # local time when owners get the day's report pushed (Mondays also the previous week's)
    daily_at: time = time(20, 0)


class AlertsSettings(BaseModel):
    # dispatchers hear of an order still without a driver this many minutes before its
    # delivery window starts
    unassigned_minutes: float = Field(default=30.0, ge=1, le=24 * 60)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        env_nested_delimiter="_",
        env_nested_max_split=1,
        env_ignore_empty=True,
        extra="ignore",
    )

    app: AppSettings = AppSettings()
    database: DatabaseSettings = DatabaseSettings()
    redis: RedisSettings = RedisSettings()
    storage: StorageSettings = StorageSettings()
    telegram: TelegramSettings = TelegramSettings()
    whatsapp: WhatsAppSettings = WhatsAppSettings()
    osrm: OsrmSettings = OsrmSettings()
    routing: RoutingSettings = RoutingSettings()
    dispatch: DispatchSettings = DispatchSettings()
    geocoding: GeocodingSettings = GeocodingSettings()
    orders: OrdersSettings = OrdersSettings()
    tracking: TrackingSettings = TrackingSettings()
    notify: NotifySettings = NotifySettings()
    webhooks: WebhooksSettings = WebhooksSettings()
    outbox: OutboxSettings = OutboxSettings()
    reports: ReportsSettings = ReportsSettings()
    alerts: AlertsSettings = AlertsSettings()
    # the sandbox channel (bot/sandbox, the /sandbox page): off unless true (`lastmile demo`
    # turns it on); from loopback only unless `sandbox_token` is set and given
    sandbox: bool = False
    sandbox_token: SecretStr | None = None

    @field_validator("sandbox_token")
    @classmethod
    def _long_enough(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value()) < 16:
            raise ValueError("must be at least 16 characters long (it is a password)")
        return value

    @model_validator(mode="after")
    def _webhooks_answer_within_the_lease(self) -> Settings:
        if self.webhooks.timeout_s > self.outbox.lease_s / 2:
            raise ValueError(
                f"WEBHOOKS_TIMEOUT_S must be at most half of OUTBOX_LEASE_S"
                f" ({self.outbox.lease_s / 2:g}): a webhook is sent within its lease"
            )
        return self

    @model_validator(mode="after")
    def _shared_key_with_shared_files(self) -> Settings:
        key = self.app.secret_key
        if self.storage.url and not (key and key.get_secret_value()):
            raise ValueError(
                "APP_SECRET_KEY is required when STORAGE_URL is set: instances sharing files "
                "must sign links with one key (a key made in APP_DATA_DIR would differ on each)"
            )
        return self

    @property
    def database_url(self) -> str:
        if self.database.url:
            return self.database.url
        return f"sqlite+aiosqlite:///{self.app.data_dir / 'lastmile.db'}"


def normalize_database_url(url: str) -> str:
    """Accept the common spellings and return the async driver URL we use."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError("is not a URL (expected sqlite:///path.db or postgresql://user@host/db)")
    scheme = scheme.lower()
    if scheme in ("sqlite", "sqlite+aiosqlite"):
        return f"sqlite+aiosqlite://{rest}"
    if scheme in ("postgres", "postgresql", "postgresql+asyncpg", "postgresql+psycopg"):
        return f"postgresql+asyncpg://{rest}"
    raise ValueError(f"names an unsupported database {scheme!r} (use sqlite or postgresql)")


def env_name(loc: tuple[int | str, ...]) -> str:
    return "_".join(str(part) for part in loc).upper()


def load_settings() -> Settings:
    """Read settings; raise SettingsProblem with one line naming each bad key."""
    try:
        return Settings()
    except ValidationError as exc:
        raise SettingsProblem("; ".join(describe(exc, label_of=env_name))) from None
    except SettingsError as exc:
        raise SettingsProblem(str(exc).splitlines()[0]) from None
