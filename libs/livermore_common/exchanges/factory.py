"""Builds the adapter registered for an `exchanges` row's `name` (EXC-03).

Registration is data (`name -> adapter class`), not an if/else over names. The factory does not
read the database itself: it is given an async `load_row(exchange_id) -> ExchangeInfo`, so it
works with any row source (the db layer, a test's dict).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Protocol

from livermore_common.errors import UnknownExchangeError
from livermore_common.exchanges.base import (
    AdapterOptions,
    Credentials,
    ExchangeAdapter,
    ExchangeInfo,
)
from livermore_common.exchanges.binance.adapter import BinanceAdapter
from livermore_common.exchanges.coinbase.adapter import CoinbaseAdapter

RowLoader = Callable[[int], Awaitable[ExchangeInfo]]


class AdapterClass(Protocol):
    """What a registered adapter class must accept."""

    def __call__(
        self,
        info: ExchangeInfo,
        *,
        credentials: Credentials | None = ...,
        options: AdapterOptions | None = ...,
    ) -> ExchangeAdapter: ...


DEFAULT_ADAPTERS: Mapping[str, AdapterClass] = {
    "coinbase": CoinbaseAdapter,
    "binance": BinanceAdapter,
    "binance_us": BinanceAdapter,
}


class ExchangeAdapterFactory:
    """`create(exchange_id)` loads the row and builds the adapter registered for its name."""

    def __init__(
        self,
        load_row: RowLoader | None = None,
        *,
        adapters: Mapping[str, AdapterClass] | None = None,
        options: AdapterOptions | None = None,
    ) -> None:
        self._load_row = load_row
        self._adapters: dict[str, AdapterClass] = dict(
            DEFAULT_ADAPTERS if adapters is None else adapters
        )
        self._options = options

    def register(self, name: str, adapter: AdapterClass) -> None:
        """Serve rows named `name` with `adapter` (replacing any earlier registration)."""
        self._adapters[name] = adapter

    @property
    def registered(self) -> tuple[str, ...]:
        return tuple(sorted(self._adapters))

    def adapter_class(self, name: str) -> AdapterClass:
        try:
            return self._adapters[name]
        except KeyError:
            known = ", ".join(self.registered) or "none"
            raise UnknownExchangeError(
                f"no adapter registered for exchange {name!r} (registered: {known})"
            ) from None

    def create_from_info(
        self, info: ExchangeInfo, *, credentials: Credentials | None = None
    ) -> ExchangeAdapter:
        cls = self.adapter_class(info.name)
        return cls(info, credentials=credentials, options=self._options)

    async def create(
        self, exchange_id: int, *, credentials: Credentials | None = None
    ) -> ExchangeAdapter:
        if self._load_row is None:
            raise UnknownExchangeError(
                "this factory has no row loader; use create_from_info(info) or pass load_row"
            )
        info = await self._load_row(exchange_id)
        return self.create_from_info(info, credentials=credentials)
