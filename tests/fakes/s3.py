"""A real S3-compatible server on 127.0.0.1 for the storage tests: moto's server mode
(`moto[server]`, from PyPI; MinIO is not in the package registries reachable here). It speaks
the S3 REST protocol over HTTP, so the service's own boto3 client talks to it unchanged."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3
import httpx
from moto.server import ThreadedMotoServer

from tests.conftest import free_port

ACCESS_KEY, SECRET_KEY = "lastmile-test", "lastmile-test-secret"


def client(endpoint: str, access: str = ACCESS_KEY, secret: str = SECRET_KEY) -> Any:
    """A plain boto3 client, for the test to look into the bucket itself."""
    return boto3.session.Session().client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        aws_access_key_id=access,
        aws_secret_access_key=secret,
    )


@contextmanager
def s3_server() -> Iterator[str]:
    """moto in a thread of the test process, emptied (its buckets live as long as the process,
    not the server); its endpoint URL."""
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    url = f"http://127.0.0.1:{port}"
    httpx.post(f"{url}/moto-api/reset", timeout=10).raise_for_status()
    try:
        yield url
    finally:
        server.stop()


@contextmanager
def s3_server_checking_keys() -> Iterator[str]:
    """moto in its own process with request signing checked (INITIAL_NO_AUTH_ACTION_COUNT=0):
    keys it does not know are refused, as by a real store."""
    port = free_port()
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"}
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(f"{url}/moto-api/", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise AssertionError("moto did not start") from None
                time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(10)
