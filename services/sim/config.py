"""Settings of the exchange simulator: markets, clock, protocol limits and cadences."""

from __future__ import annotations

import msgspec


class SimConfig(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    host: str = "127.0.0.1"
    # 0 = any free port (the chosen one is on `Simulator.binance_url` / `coinbase_url`).
    binance_port: int = 0
    coinbase_port: int = 0
    seed: int = 1
    symbols: int = 50
    # Sim seconds per real second; `start_time_ms` None = now, aligned down to the minute.
    speed: float = 1.0
    start_time_ms: int | None = None
    # REST serves candles from start_time - history_minutes on.
    history_minutes: int = 2 * 1440
    # Market shape: 24h quote volume of the top symbol, Zipf exponent, mean trade size (quote).
    top_quote_volume: float = 2.0e9
    volume_alpha: float = 1.6
    avg_trade_quote: float = 300.0
    # Binance WebSocket: real values are 20 s, 60 s, 5 msg/s, 1024 streams, 24 h.
    binance_ping_interval_s: float = 20.0
    binance_pong_timeout_s: float = 60.0
    binance_max_incoming_per_s: int = 5
    binance_max_streams: int = 1024
    binance_max_connection_s: float = 24 * 3600.0
    binance_weight_limit_1m: int = 6000
    # Signed endpoints (`/api/v3/account`); an empty key disables signature checks.
    binance_api_key: str = ""
    binance_api_secret: str = ""
    # Coinbase WebSocket: updates every `coinbase_tick_ms` sim ms, never faster than
    # `min_tick_real_s` real seconds (ticks coalesce at high speeds).
    coinbase_tick_ms: int = 1000
    min_tick_real_s: float = 0.02
    coinbase_subscribe_timeout_s: float = 5.0
    # Public REST requests per second before 429 (real: about 10); 0 = unlimited.
    coinbase_public_rps: float = 10.0
    # PEM public key that verifies Coinbase ES256 JWTs; empty = any well-formed JWT is accepted.
    coinbase_jwt_public_key: str = ""
    # Binance firehose: frames pre-rendered for this many minutes, written as fast as read.
    firehose: bool = False
    firehose_minutes: int = 30
    # Serve https:// and wss:// with a self-signed certificate made at start (its PEM file is
    # `Simulator.ca_file`); hosts named in it besides localhost/127.0.0.1/::1 and `host`.
    tls: bool = False
    tls_hosts: tuple[str, ...] = ()
