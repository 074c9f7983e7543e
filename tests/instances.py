"""Several real Lastmile instances for the tests: `lastmile run`, each in its own process with
its own engine, senders and data folder, on one database the test gives them."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

from tests.conftest import free_port

START_S = 90.0  # the most starting may take (imports take ~5 s on a quiet machine)
STOP_S = 30.0


@dataclass
class Instance:
    name: str
    process: subprocess.Popen[bytes]
    base_url: str
    log: Path
    killed: bool = False

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        """kill -9: no clean-up at all, as when a machine dies."""
        self.process.kill()
        self.process.wait(STOP_S)
        self.killed = True


def start(name: str, env: dict[str, str], folder: Path) -> Instance:
    folder.mkdir(parents=True, exist_ok=True)
    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    env = {**env, "APP_DATA_DIR": str(folder / "data"), "APP_BASE_URL": base_url}
    log = folder / "output.log"
    with log.open("wb") as out:  # a file, not a pipe: a full pipe would stall the instance
        process = subprocess.Popen(
            [sys.executable, "-m", "lastmile", "run", "--port", str(port)],
            env=env,
            cwd=folder,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    return Instance(name, process, base_url, log)


async def wait_healthy(instance: Instance, client: httpx.AsyncClient) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + START_S
    while loop.time() < deadline:
        if instance.process.poll() is not None:
            raise AssertionError(f"{instance.name} exited:\n{instance.output()}")
        try:
            if (await client.get(f"{instance.base_url}/healthz", timeout=2)).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.25)
    raise AssertionError(f"{instance.name} did not answer /healthz within {START_S} s")


def stop(instance: Instance) -> None:
    """SIGTERM (it finishes what is in flight and hands the rest back), SIGKILL if it hangs."""
    if instance.process.poll() is None:
        instance.process.send_signal(signal.SIGTERM)
    try:
        instance.process.wait(STOP_S)
    except subprocess.TimeoutExpired:
        instance.process.kill()
        instance.process.wait(STOP_S)
        raise AssertionError(f"{instance.name} did not stop within {STOP_S} s") from None


@asynccontextmanager
async def running(
    database_url: str, folder: Path, *envs: dict[str, str]
) -> AsyncIterator[list[Instance]]:
    """One instance per environment in `envs`, all on `database_url`, started at once and
    healthy; stopped afterwards (each must exit cleanly unless the test killed it)."""
    instances = [
        start(f"instance-{i}", {**env, "DATABASE_URL": database_url}, folder / f"instance-{i}")
        for i, env in enumerate(envs)
    ]
    try:
        async with httpx.AsyncClient() as client:
            await asyncio.gather(*(wait_healthy(each, client) for each in instances))
        yield instances
    except BaseException:  # what each instance logged goes with the failure
        for each in instances:
            print(f"----- {each.name}{' (killed)' if each.killed else ''} -----")
            print(each.output()[-30_000:])
        raise
    finally:
        await asyncio.gather(*(asyncio.to_thread(stop, each) for each in instances))
    for each in instances:
        if not each.killed:
            assert each.process.returncode == 0, f"{each.name} failed:\n{each.output()}"
            assert "Traceback" not in each.output(), each.output()
