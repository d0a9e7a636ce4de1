"""The `livermore` command: one subcommand per service and tool, each loaded only when used."""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

# subcommand -> (module with a `main(argv) -> int`, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "db": ("services.dbtool.__main__", "database tools: migrate, pull, status"),
    "ingestor": ("services.ingestor.__main__", "per-exchange ingestor (idle until started)"),
    "indicators": ("services.indicators.__main__", "indicator worker (MACD-V on closed candles)"),
    "alerts": ("services.alerts.__main__", "alert evaluator"),
    "symbols": ("services.symbols.__main__", "symbol-tier manager"),
    "gateway": ("services.gateway.__main__", "control gateway: HTTP API and admin page"),
    "sim": ("services.sim.__main__", "exchange simulator (Coinbase and Binance protocols)"),
    "ctl": ("services.ctl.__main__", "send signed control commands: start, stop, status"),
    "tail": ("services.ctl.tail", "print alerts or events live"),
    "users": ("services.accounts.users", "register users"),
    "user-exchanges": ("services.accounts.user_exchanges", "register users' exchange accounts"),
    "up": ("services.supervisor.__main__", "run the whole system under one supervisor"),
}


def _usage() -> str:
    lines = ["usage: livermore <command> [options]", "", "commands:"]
    lines += [f"  {name:<15} {help_}" for name, (_, help_) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(_usage())
        return 0
    name, rest = args[0], args[1:]
    if name not in COMMANDS:
        print(f"livermore: unknown command {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module_name, _ = COMMANDS[name]
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name and module_name.startswith(exc.name):
            print(f"livermore: command {name!r} is not available in this build", file=sys.stderr)
            return 2
        raise
    result: int = module.main(rest)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
