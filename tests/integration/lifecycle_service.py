"""A tiny service run as a subprocess by test_lifecycle: `python -m ... URL NAMESPACE MODE`.

Modes: `work` counts work items until stopped, then drains (records `drained`); `crash` raises
after its first item; `stubborn` ignores the stop event (the runner must cancel it).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from livermore_common.keys import KeySpace
from livermore_common.lifecycle import ServiceContext, main_entry
from livermore_common.logs import configure_logging

NAME = "lifetest"


def _k(ctx: ServiceContext, what: str) -> str:
    return f"{ctx.keys.namespace}{what}"


@asynccontextmanager
async def resource(ctx: ServiceContext) -> AsyncIterator[None]:
    try:
        yield
    finally:
        await ctx.redis.set(_k(ctx, "resource-closed"), "1")


async def body(ctx: ServiceContext, mode: str) -> None:
    await ctx.exit_stack.enter_async_context(resource(ctx))
    while mode == "stubborn" or not ctx.stop.is_set():
        await ctx.redis.incr(_k(ctx, "work"))
        if mode == "crash":
            raise RuntimeError("boom")
        await asyncio.sleep(0.01)
    await ctx.redis.set(_k(ctx, "drained"), "1")  # drain: finish what is in hand


def main(argv: list[str]) -> int:
    url, namespace, mode = argv
    configure_logging(fmt="json", level="warning", service=NAME)

    async def run(ctx: ServiceContext) -> None:
        await body(ctx, mode)

    return main_entry(
        NAME,
        run,
        redis_url=url,
        keys=KeySpace(namespace),
        instance_id="one",
        grace_seconds=0.5,
        health_interval=0.2,
    )


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
