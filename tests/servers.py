"""Find or start the real Redis and Postgres the tests talk to.

Order: LIVERMORE_TEST_REDIS_URL / LIVERMORE_TEST_DATABASE_URL when set; otherwise the local servers
on their default ports; otherwise throwaway servers started from the system's binaries; otherwise
testcontainers when a Docker engine answers. `None` means nothing could be found or started.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_open(host: str, port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
        return True
    return False


def _wait_port(port: int, timeout: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if _port_open("127.0.0.1", port):
            return True
        time.sleep(0.1)
    return False


def _docker_available() -> bool:
    try:
        import docker  # type: ignore[import-untyped]

        docker.from_env().ping()
        return True
    except Exception:
        return False


@contextlib.contextmanager
def redis_server() -> Iterator[str | None]:
    url = os.environ.get("LIVERMORE_TEST_REDIS_URL")
    if url:
        yield url
        return
    if _port_open("127.0.0.1", 6379):
        yield "redis://127.0.0.1:6379/0"
        return
    binary = shutil.which("redis-server")
    if binary:
        port = _free_port()
        with tempfile.TemporaryDirectory() as tmp:
            proc = subprocess.Popen(
                [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--dir", tmp],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            try:
                yield f"redis://127.0.0.1:{port}/0" if _wait_port(port) else None
            finally:
                proc.terminate()
                proc.wait(10)
        return
    if _docker_available():
        from testcontainers.redis import RedisContainer  # type: ignore[import-untyped]

        with RedisContainer("redis:7-alpine") as container:
            host, port = container.get_container_host_ip(), container.get_exposed_port(6379)
            yield f"redis://{host}:{port}/0"
        return
    yield None


def _postgres_binaries() -> tuple[str, str] | None:
    initdb, postgres = shutil.which("initdb"), shutil.which("postgres")
    if not (initdb and postgres):
        found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
        if not found:
            return None
        initdb, postgres = str(found[-1]), str(found[-1].with_name("postgres"))
    return initdb, postgres


@contextlib.contextmanager
def postgres_server() -> Iterator[str | None]:
    """Yields an admin URL (any database) of a server where the test user may create databases."""
    url = os.environ.get("LIVERMORE_TEST_DATABASE_URL")
    if url:
        yield url
        return
    if _port_open("127.0.0.1", 5432):
        yield "postgresql://postgres@127.0.0.1:5432/postgres"
        return
    bins = _postgres_binaries()
    if bins:
        yield from _throwaway_postgres(*bins)
        return
    if _docker_available():
        from testcontainers.postgres import PostgresContainer  # type: ignore[import-untyped]

        with PostgresContainer("postgres:16-alpine", driver=None) as container:
            yield container.get_connection_url()
        return
    yield None


def _throwaway_postgres(initdb: str, postgres: str) -> Iterator[str | None]:
    port = _free_port()
    tmp = tempfile.mkdtemp(prefix="livermore-pg-")
    # Postgres refuses to run as root; run it as the `postgres` system user when we are root.
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if prefix:
        shutil.chown(tmp, "postgres")
    data = os.path.join(tmp, "data")
    subprocess.run(
        [*prefix, initdb, "-A", "trust", "-U", "postgres", "-D", data],
        check=True,
        stdout=subprocess.DEVNULL,
    )
    proc = subprocess.Popen(
        [*prefix, postgres, "-D", data, "-p", str(port), "-k", tmp, "-h", "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres" if _wait_port(port) else None
    finally:
        proc.terminate()
        proc.wait(20)
        shutil.rmtree(tmp, ignore_errors=True)
