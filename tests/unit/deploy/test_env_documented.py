"""Every variable the code reads and every `${VAR}` of the compose file is in .env.example.

The code's variables are found two ways, so a new setting cannot slip through: literal
`LIVERMORE_…` names in libs/ and services/, and the fields of every settings struct passed to
`settings_from_env` (with that call's prefix).
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path
from types import ModuleType

from livermore_common.config import ENV_PREFIX
from tests.unit.deploy.compose import ROOT, documented, variables

SOURCES = [p for d in ("libs", "services") for p in sorted((ROOT / d).rglob("*.py"))]
_LITERAL = re.compile(r"\bLIVERMORE_[A-Z0-9_]*[A-Z0-9]\b")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[0] == "libs":
        parts = parts[1:]
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _aliases(tree: ast.Module) -> set[str]:
    names = {"settings_from_env"}
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            names |= {a.asname for a in node.names if a.name == "settings_from_env" and a.asname}
    return names


def _prefix(call: ast.Call, module: ModuleType) -> str:
    for kw in call.keywords:
        if kw.arg == "prefix":
            if isinstance(kw.value, ast.Constant):
                return str(kw.value.value)
            assert isinstance(kw.value, ast.Name), ast.dump(kw.value)
            return str(getattr(module, kw.value.id))
    return ENV_PREFIX


def settings_variables() -> set[str]:
    found: set[str] = set()
    for path in SOURCES:
        tree = ast.parse(path.read_text())
        aliases = _aliases(tree)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
                continue
            if node.func.id not in aliases or not node.args:
                continue
            struct = node.args[0]
            if not isinstance(struct, ast.Name) or struct.id == "cls":
                continue
            module = importlib.import_module(_module_name(path))
            fields = getattr(module, struct.id).__struct_fields__
            found |= {_prefix(node, module) + f.upper() for f in fields}
    return found


def literal_variables() -> set[str]:
    return {m for p in SOURCES for m in _LITERAL.findall(p.read_text())}


def test_the_discovery_finds_struct_fields_and_literals() -> None:
    from_structs = settings_variables()
    # One of each kind of struct: shared, service-prefixed, same-prefix extra, up's own.
    assert {
        "LIVERMORE_INSTANCE_ID",
        "LIVERMORE_GATEWAY_SESSION_TTL_SECONDS",
        "LIVERMORE_SYMBOLS_MIN_VALUE_USD",
        "LIVERMORE_ALERT_WEBHOOK_URL",
        "LIVERMORE_STATE_DIR",
    } <= from_structs
    assert {"LIVERMORE_SECRETS_KEY", "LIVERMORE_MIGRATIONS_DIR"} <= literal_variables()


def test_every_variable_the_code_reads_is_documented() -> None:
    missing = (settings_variables() | literal_variables()) - set(documented())
    assert not missing, f"add these to .env.example with a comment: {sorted(missing)}"


def test_every_compose_variable_is_documented() -> None:
    missing = variables() - set(documented())
    assert not missing, f"add these to .env.example with a comment: {sorted(missing)}"


def test_every_documented_variable_has_a_comment() -> None:
    bare = [name for name, commented in documented().items() if not commented]
    assert not bare, f"these lines of .env.example need a comment above them: {bare}"
