"""Reading deploy/compose/docker-compose.yml as Compose would: YAML, merge keys, `${VAR}`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
COMPOSE_FILE = ROOT / "deploy" / "compose" / "docker-compose.yml"
ENV_EXAMPLE = ROOT / ".env.example"
# The values a user must supply (`${VAR:?…}` in the compose file).
REQUIRED = {
    "POSTGRES_PASSWORD": "pw-for-tests",
    "LIVERMORE_CONTROL_SECRET": "c" * 32,
    "LIVERMORE_GATEWAY_TOKEN": "t" * 32,
}
# Innermost `${NAME}`, `${NAME:-default}` or `${NAME:?message}` (no `$`, `{`, `}` inside).
_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?([-?])([^${}]*))?\}")


def load() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


def variables() -> set[str]:
    """Every variable the compose file interpolates."""
    return set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", COMPOSE_FILE.read_text()))


class MissingVariable(LookupError):
    pass


def interpolate(value: Any, env: Mapping[str, str]) -> Any:
    """Compose's interpolation of one value (strings in lists and maps too)."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def one(match: re.Match[str]) -> str:
        name, op, arg = match.group(1), match.group(2), match.group(3) or ""
        current = env.get(name, "")
        if current:
            return current
        if op == "?":
            raise MissingVariable(f"{name}: {arg}")
        return arg if op == "-" else ""

    while _VAR.search(value):
        value = _VAR.sub(one, value)
    return value


def livermore_services(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Services that run the project's image (those with a `build`)."""
    return {name: svc for name, svc in data["services"].items() if "build" in svc}


def documented() -> dict[str, bool]:
    """Variables of .env.example (set or commented out) → whether a comment line precedes it
    (directly, or through a run of variable lines sharing one comment)."""
    out: dict[str, bool] = {}
    previous, run_commented = "", False
    for line in ENV_EXAMPLE.read_text().splitlines():
        m = re.match(r"^#?\s*([A-Z][A-Z0-9_]*)=", line)
        if m:
            run_commented = previous == "comment" or (previous == "variable" and run_commented)
            out[m.group(1)] = run_commented
            previous = "variable"
        elif line.startswith("#") and line.strip("# -"):
            previous = "comment"
        else:
            previous = ""
    return out
