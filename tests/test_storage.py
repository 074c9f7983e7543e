"""Files in one storage: the local folder or an S3-compatible object store (a real one, moto's
server mode on 127.0.0.1; `tests/fakes/s3.py`), shared by instances, with bad keys refused, a
wrong bucket or wrong keys stopping the service at start, and a store that is down for a while
losing nothing (the file waits in the database, the driver is told once, the upload follows)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import ValidationError
from sqlmodel import select

from core.config import Settings, SettingsProblem, load_settings
from core.db import Database
from core.drivers import proofs
from core.errors import DomainError
from core.models import Order, OrderStatus, Proof, Role, SpooledFile
from core.storage import BadKey, Files, LocalStorage, S3Storage, StorageError
from core.tracking.links import Signer
from core.webviews import driver as driver_page
from tests.factories import count
from tests.fakes import telegram_updates as tu
from tests.fakes.s3 import ACCESS_KEY, SECRET_KEY, client, s3_server, s3_server_checking_keys
from tests.fakes.tcp_proxy import Proxy
from tests.fakes.telegram_api import FakeTelegram
from tests.instances import running, start
from tests.telegram_harness import SECRET, add_person, jpeg, running_bot
from tests.test_signature_pad_telegram import init_data
from tests.test_telegram_driver import BERLIN, assign, driver_of, link, new_order, status

S = OrderStatus
LINK_KEY = "k" * 40  # APP_SECRET_KEY: the same on every instance
BAD_KEYS = ("../secret.csv", "/secret.csv", "proofs/../../secret.csv", "proofs//x.jpg", "",
            ".hidden", "a/./b", "proofs/x.jpg/", "x" * 600)  # fmt: skip


def storage_settings(endpoint: str, url: str, **extra: Any) -> Settings:
    return Settings(
        app={"secret_key": LINK_KEY},
        storage={
            "url": url,
            "s3_endpoint_url": endpoint,
            "s3_access_key": ACCESS_KEY,
            "s3_secret_key": SECRET_KEY,
            **extra,
        },
        _env_file=None,  # type: ignore[call-arg]
    )


async def spooled_row(db: Database, key: str) -> SpooledFile:
    async with db.sessions() as session:
        held = await session.get(SpooledFile, key)
    assert held is not None, f"{key} is not in the spool"
    return held


def keys_in(endpoint: str, bucket: str) -> set[str]:
    listing = client(endpoint).list_objects_v2(Bucket=bucket)
    return {item["Key"] for item in listing.get("Contents", [])}


def test_storage_settings_are_checked_with_a_clear_message(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    wrong = {
        "http://lastmile/proofs": "use s3://bucket or s3://bucket/prefix",
        "lastmile": "use s3://bucket or s3://bucket/prefix",
        "s3://Bad_Bucket": "names a bucket that cannot be one",
        "s3://ab": "names a bucket that cannot be one",
        "s3://lastmile/../other": "has a prefix that cannot be one",
        "s3://lastmile/a//b": "has a prefix that cannot be one",
    }
    for url, words in wrong.items():
        with pytest.raises(ValidationError, match=words.replace("(", r"\(")):
            Settings(app={"secret_key": LINK_KEY}, storage={"url": url}, _env_file=None)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="APP_SECRET_KEY is required when STORAGE_URL"):
        Settings(storage={"url": "s3://lastmile"}, _env_file=None)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="STORAGE_S3_ACCESS_KEY are set together"):
        Settings(
            app={"secret_key": LINK_KEY},
            storage={"url": "s3://lastmile", "s3_access_key": "only-this"},
            _env_file=None,  # type: ignore[call-arg]
        )
    good = Settings(
        app={"secret_key": LINK_KEY}, storage={"url": " s3://lastmile/shop-1/ "}, _env_file=None
    )  # type: ignore[call-arg]
    assert (good.storage.bucket, good.storage.prefix) == ("lastmile", "shop-1")
    assert Settings(_env_file=None).storage.bucket is None  # type: ignore[call-arg]
    # at start: one line naming the key
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("APP_SECRET_KEY", LINK_KEY)
    monkeypatch.setenv("STORAGE_URL", "https://lastmile.s3.amazonaws.com")
    with pytest.raises(SettingsProblem, match="STORAGE_URL") as caught:
        load_settings()
    assert "\n" not in str(caught.value)
    monkeypatch.delenv("APP_SECRET_KEY")
    monkeypatch.setenv("STORAGE_URL", "s3://lastmile")
    with pytest.raises(SettingsProblem, match="APP_SECRET_KEY is required"):
        load_settings()


async def test_files_go_under_the_prefix_and_keys_leading_elsewhere_are_refused(
    db: Database, tmp_path: Path
):
    with s3_server() as endpoint:
        raw = client(endpoint)
        raw.create_bucket(Bucket="lm-keys")
        raw.put_object(Bucket="lm-keys", Key="secret.csv", Body=b"another shop's file\n")
        files = Files(S3Storage(storage_settings(endpoint, "s3://lm-keys/shop-1").storage), db)
        picture = jpeg()
        kept = await files.keep(picture, "jpg")
        digest = hashlib.sha256(picture).hexdigest()
        assert kept.key == f"proofs/{digest[:2]}/{digest}.jpg" and not kept.spooled
        stored = raw.get_object(Bucket="lm-keys", Key=f"shop-1/{kept.key}")
        assert stored["Body"].read() == picture and stored["ContentType"] == "image/jpeg"
        assert await files.read(kept.key) == picture and await files.exists(kept.key)
        assert await files.read("proofs/00/missing.jpg") is None
        for bad in BAD_KEYS:
            assert await files.read(bad) is None, bad
            assert not await files.exists(bad), bad
            with pytest.raises(BadKey):
                await files.put(bad, b"x")
        with pytest.raises(StorageError, match="empty file"):
            await files.put("reports/day/en/empty.csv", b"")
        assert keys_in(endpoint, "lm-keys") == {"secret.csv", f"shop-1/{kept.key}"}
        assert await count(db, SpooledFile) == 0

    # the local folder refuses the same keys, symlinks leading out included
    data = tmp_path / "data"
    (tmp_path / "secret.csv").write_bytes(b"not in the folder\n")
    local = Files(LocalStorage(data))
    assert (await local.keep(picture, "jpg")).key == kept.key
    assert (data / kept.key).read_bytes() == picture
    (data / "proofs" / "out").symlink_to(tmp_path)
    for bad in (*BAD_KEYS, "proofs/out/secret.csv"):
        assert await local.read(bad) is None, bad
        with pytest.raises(BadKey):
            await local.put(bad, b"x")
    assert (tmp_path / "secret.csv").read_bytes() == b"not in the folder\n"


async def test_an_empty_photo_is_refused_and_keeps_nothing(db: Database, tmp_path: Path):
    _, member = await add_person(db, 641, "Ana", [Role.DRIVER])
    driver = await driver_of(db, member.id)
    order = await new_order(db, "Cara", 52.53, 13.41)
    await assign(db, order.id, driver.id)
    assert order.id is not None and driver.id is not None
    with s3_server() as endpoint:
        client(endpoint).create_bucket(Bucket="lm-empty")
        files = Files(S3Storage(storage_settings(endpoint, "s3://lm-empty").storage), db)
        with pytest.raises(DomainError) as refused:
            await proofs.save_photo(db, files, order.id, driver.id, b"", max_bytes=10**7)
        assert refused.value.key == "proof.not_image"
        assert keys_in(endpoint, "lm-empty") == set()
    assert await count(db, Proof) == 0 and await count(db, SpooledFile) == 0


async def test_the_store_down_while_a_driver_sends_her_photo_loses_nothing_and_tells_her_once(
    db: Database, tmp_path: Path
):
    ana, member = await add_person(db, 621, "Ana", [Role.DRIVER])
    _, cara_member = await add_person(db, 622, "Cara", [Role.CUSTOMER])
    driver = await driver_of(db, member.id)
    order = await new_order(db, "Cara", 52.53, 13.41)
    await link(db, order, cara_member.id)
    assert order.id is not None and driver.id is not None
    with s3_server() as endpoint:
        client(endpoint).create_bucket(Bucket="lm-outage")
        proxy = Proxy("127.0.0.1", int(endpoint.rsplit(":", 1)[1]))
        await proxy.start()
        storage = {
            "url": "s3://lm-outage/day",
            "s3_endpoint_url": f"http://127.0.0.1:{proxy.listen_port}",
            "s3_access_key": ACCESS_KEY,
            "s3_secret_key": SECRET_KEY,
            "retry_s": 0.3,
            "timeout_s": 1,
        }
        try:
            app = {"secret_key": LINK_KEY}
            async with running_bot(db, tmp_path, app=app, storage=storage) as bot:
                services = bot.app.state.services
                await bot.send(tu.command(ana, "/shift"))
                await assign(db, order.id, driver.id)
                await bot.send(tu.location(ana, *BERLIN, live_period=3600, message_id=41))
                await bot.outbox_settled()
                await bot.send(tu.command(ana, "/route"))
                stop_message = bot.last(621)
                await bot.tap(ana, 621, stop_message, "Arrived")
                await bot.tap(ana, 621, stop_message, "Delivered")

                proxy.cut()  # the object store is out
                picture = jpeg()
                file_id, unique = bot.fake.add_file(picture, file_path="photos/file_7.jpg")
                await bot.send(tu.photo(ana, file_id, unique, file_size=len(picture)))
                assert await status(db, order.id) is S.DELIVERED
                async with db.sessions() as session:
                    [proof] = list(await session.exec(select(Proof)))
                key = proof.stored_path
                assert key and await services.files.spooled(key)
                deadline = time.monotonic() + 30
                while (held := await spooled_row(db, key)).attempts < 3:  # tried while it is out
                    assert time.monotonic() < deadline, "the upload was not tried again"
                    await asyncio.sleep(0.2)
                assert held.data == picture
                told = [t for t in bot.texts(621) if "kept" in t]
                assert told == [
                    f"Photo of order #{order.id} received and kept. The file store is out for a"
                    " moment; it will be filed as soon as it is back. Nothing more to do."
                ]
                assert any(t.startswith(f"Order #{order.id} delivered.") for t in bot.texts(621))
                # meanwhile the dispatcher's signed link serves it from the spool
                url, _ = services.signer.proof_url(proof.id, services.clock())
                async with httpx.AsyncClient() as http:
                    served = await http.get(url)
                assert served.status_code == 200 and served.content == picture
                assert keys_in(endpoint, "lm-outage") == set()

                proxy.restore()  # back: the worker uploads it
                deadline = time.monotonic() + 20
                while await services.files.spooled(key):
                    assert time.monotonic() < deadline, "the spooled photo was never uploaded"
                    await asyncio.sleep(0.2)
                stored = client(endpoint).get_object(Bucket="lm-outage", Key=f"day/{key}")
                assert stored["Body"].read() == picture
                assert hashlib.sha256(picture).hexdigest() == proof.sha256
                async with httpx.AsyncClient() as http:
                    served = await http.get(url)
                assert served.status_code == 200 and served.content == picture
                assert [t for t in bot.texts(621) if "kept" in t] == told  # told once only
                await bot.outbox_settled()
                delivered = [c for c in bot.fake.sent_to(622) if c.method == "sendPhoto"]
                assert len(delivered) == 1
        finally:
            await proxy.close()


async def test_wrong_keys_spool_the_file_with_a_logged_error_and_lose_nothing(
    db: Database, caplog: pytest.LogCaptureFixture
):
    with s3_server_checking_keys() as endpoint:
        settings = storage_settings(endpoint, "s3://lm-keys-wrong", s3_access_key="AKIAWRONG0000",
                                    s3_secret_key="wrong-secret")  # fmt: skip
        files = Files(S3Storage(settings.storage), db)
        data = b"order,status\n1,delivered\n"
        with caplog.at_level(logging.ERROR, logger="core.storage"):
            assert await files.put("reports/day/en/day.csv", data) is False
            assert await files.flush() == 0  # tried again: still refused, still kept
        assert "does not know STORAGE_S3_ACCESS_KEY" in caplog.text
        async with db.sessions() as session:
            held = await session.get(SpooledFile, "reports/day/en/day.csv")
        assert held is not None and held.data == data and held.attempts == 1
        assert await files.read("reports/day/en/day.csv") == data  # readable meanwhile


@pytest.mark.parametrize("mistake", ["no such bucket", "wrong keys"])
async def test_a_wrong_bucket_or_wrong_keys_stop_the_service_at_start(
    mistake: str, database_url: str, clean_env: dict[str, str], tmp_path: Path
):
    server = s3_server if mistake == "no such bucket" else s3_server_checking_keys
    with server() as endpoint:
        env = {
            **clean_env,
            "DATABASE_URL": database_url,
            "APP_SECRET_KEY": LINK_KEY,
            "STORAGE_URL": "s3://lm-not-there/shop",
            "STORAGE_S3_ENDPOINT_URL": endpoint,
            "STORAGE_S3_ACCESS_KEY": ACCESS_KEY,
            "STORAGE_S3_SECRET_KEY": SECRET_KEY,
        }
        instance = start("refused", env, tmp_path / "refused")
        try:
            await asyncio.to_thread(instance.process.wait, 90)
        finally:
            if instance.process.poll() is None:
                instance.kill()
    words = {
        "no such bucket": "the bucket in STORAGE_URL does not exist",
        "wrong keys": "the store refused STORAGE_S3_ACCESS_KEY/SECRET_KEY or the bucket",
    }[mistake]
    assert instance.process.returncode != 0
    output = instance.output()
    assert f"cannot start: {words} (s3://lm-not-there/shop at {endpoint}" in output


def to_instance(fake: FakeTelegram, instance_url: str) -> None:
    """Point the fake's webhook at this instance (each instance set it to its own at start)."""
    assert fake.webhook is not None and fake.webhook["url"].endswith("/webhooks/telegram")
    fake.webhook = {**fake.webhook, "url": f"{instance_url}/webhooks/telegram"}


async def test_a_photo_kept_through_one_instance_is_served_by_another(
    db: Database, database_url: str, clean_env: dict[str, str], tmp_path: Path
):
    ana, member = await add_person(db, 631, "Ana", [Role.DRIVER])
    driver = await driver_of(db, member.id)
    order = await new_order(db, "Cara", 52.53, 13.41)
    assert order.id is not None and driver.id is not None
    async with FakeTelegram() as fake:
        with s3_server() as endpoint:
            client(endpoint).create_bucket(Bucket="lm-shared")
            env = {
                **clean_env,
                "APP_SECRET_KEY": LINK_KEY,
                "STORAGE_URL": "s3://lm-shared/shop",
                "STORAGE_S3_ENDPOINT_URL": endpoint,
                "STORAGE_S3_ACCESS_KEY": ACCESS_KEY,
                "STORAGE_S3_SECRET_KEY": SECRET_KEY,
                "TELEGRAM_BOT_TOKEN": fake.token,
                "TELEGRAM_API_URL": fake.url,
                "TELEGRAM_MODE": "webhook",
                "TELEGRAM_WEBHOOK_SECRET": SECRET,
                "TELEGRAM_RATE_PER_S": "100",
                "TELEGRAM_CHAT_RATE_PER_S": "100",
            }
            async with running(database_url, tmp_path, env, env) as (a, b):
                to_instance(fake, a.base_url)

                async def post_update(_: str, update: dict[str, Any]) -> None:
                    assert await fake.deliver_webhook(update) == 200

                await post_update(a.base_url, tu.command(ana, "/shift"))
                await assign(db, order.id, driver.id)
                await post_update(a.base_url, tu.location(ana, *BERLIN, live_period=3600,
                                                          message_id=41))  # fmt: skip
                await post_update(a.base_url, tu.command(ana, "/route"))
                stop = fake.sent_to(631)[-1]
                for label in ("Arrived", "Delivered"):
                    markup = stop.params.get("reply_markup") or {}
                    [data] = [
                        button["callback_data"]
                        for row in markup["inline_keyboard"]
                        for button in row
                        if label in button["text"]
                    ]
                    message_id = (stop.result or {}).get("message_id", 1)
                    await post_update(
                        a.base_url, tu.callback(ana, data, message_id=message_id, chat_id=631)
                    )
                picture = jpeg()
                file_id, unique = fake.add_file(picture, file_path="photos/file_3.jpg")
                await post_update(
                    a.base_url, tu.photo(ana, file_id, unique, file_size=len(picture))
                )
                async with db.sessions() as session:
                    [proof] = list(await session.exec(select(Proof)))
                    delivered = await session.get(Order, order.id)
                assert proof.id is not None and delivered is not None
                assert delivered.status is S.DELIVERED
                assert keys_in(endpoint, "lm-shared") == {f"shop/{proof.stored_path}"}
                # instance B has nothing on its disk, and serves it byte for byte
                signer = Signer(LINK_KEY.encode(), b.base_url, timedelta(minutes=60))
                url, _ = signer.proof_url(proof.id, datetime.now(UTC))
                async with httpx.AsyncClient() as http:
                    by_link = await http.get(url)
                    on_page = await http.get(f"{b.base_url}/t/{delivered.tracking_token}/photo")
                assert by_link.status_code == 200 and by_link.content == picture
                assert by_link.headers["content-type"] == "image/jpeg"
                assert on_page.status_code == 200 and on_page.content == picture
                for each in (a, b):
                    assert not (tmp_path / each.name / "data" / "proofs").exists()


async def test_a_photo_from_the_drivers_page_while_the_store_is_out_is_kept_and_said_so(
    db: Database, tmp_path: Path
):
    ana, member = await add_person(db, 651, "Ana", [Role.DRIVER])
    driver = await driver_of(db, member.id)
    order = await new_order(db, "Cara", 52.53, 13.41, proof_required="photo")
    assert order.id is not None and driver.id is not None
    with s3_server() as endpoint:
        client(endpoint).create_bucket(Bucket="lm-page")
        proxy = Proxy("127.0.0.1", int(endpoint.rsplit(":", 1)[1]))
        await proxy.start()
        storage = {
            "url": "s3://lm-page",
            "s3_endpoint_url": f"http://127.0.0.1:{proxy.listen_port}",
            "s3_access_key": ACCESS_KEY,
            "s3_secret_key": SECRET_KEY,
            "retry_s": 0.3,
            "timeout_s": 1,
        }
        try:
            page_app = {"telegram": {"mini_apps": True}, "storage": storage}
            async with running_bot(db, tmp_path, app={"secret_key": LINK_KEY}, **page_app) as bot:
                svc = bot.app.state.services
                await bot.send(tu.command(ana, "/shift"))
                await assign(db, order.id, driver.id)
                await bot.send(tu.command(ana, "/stops"))
                [[button]] = bot.last(651).params["reply_markup"]["inline_keyboard"]
                url = button["web_app"]["url"]
                token = url.rsplit("/driver/", 1)[1]
                launch = init_data(svc.settings.telegram.bot_token.get_secret_value(), 651, "Ana")
                headers = {
                    "Origin": bot.base_url,
                    "X-Page-Key": driver_page.form_key(svc, token),
                    "X-Telegram-Init-Data": launch,
                    "Content-Type": "image/jpeg",
                }
                proxy.cut()
                picture = jpeg()
                async with httpx.AsyncClient(headers=headers) as http:
                    answer = await http.post(f"{url}/stops/{order.id}/photo", content=picture)
                assert answer.status_code == 200, answer.text
                assert answer.json()["message"] == (
                    f"Photo of order #{order.id} received and kept. The file store is out for a"
                    " moment; it will be filed as soon as it is back. Nothing more to do."
                )
                async with db.sessions() as session:
                    [proof] = list(await session.exec(select(Proof)))
                assert (
                    proof.stored_path and (await spooled_row(db, proof.stored_path)).data == picture
                )
                proxy.restore()
                deadline = time.monotonic() + 20
                while await svc.files.spooled(proof.stored_path):
                    assert time.monotonic() < deadline, "the spooled photo was never uploaded"
                    await asyncio.sleep(0.2)
                stored = client(endpoint).get_object(Bucket="lm-page", Key=proof.stored_path)
                assert stored["Body"].read() == picture
        finally:
            await proxy.close()


async def test_one_key_written_by_many_at_once_is_kept_whole_in_the_folder(tmp_path: Path):
    """A pad submitted twice at once keeps the same signature twice: neither write may move
    the other's file away (it did: one shared ".part" name, a 500 for the second submit)."""
    files = Files(LocalStorage(tmp_path))
    data = jpeg()
    kept = await asyncio.gather(*(files.keep(data, "jpg") for _ in range(30)))
    assert {each.key for each in kept} == {kept[0].key}
    path = tmp_path / kept[0].key
    assert path.read_bytes() == data
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no partial file left
