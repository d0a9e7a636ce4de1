-- EXC-01: exchange metadata, seeded idempotently. Endpoints and limits live here, not in code.
-- api_limits come from the venues' published limits; fee_schedule is the base tier (fractions).

CREATE TABLE exchanges (
    id serial PRIMARY KEY,
    name text NOT NULL,
    display_name text NOT NULL,
    ws_url text NOT NULL,
    rest_url text NOT NULL,
    supported_timeframes text[] NOT NULL DEFAULT '{}'::text[],
    api_limits jsonb NOT NULL DEFAULT '{}'::jsonb,
    fee_schedule jsonb NOT NULL DEFAULT '{}'::jsonb,
    geo_restrictions jsonb NOT NULL DEFAULT '{}'::jsonb,
    is_active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT exchanges_name_key UNIQUE (name)
);

COMMENT ON TABLE exchanges IS 'One row per venue (EXC-01); its id scopes every Redis key and channel.';

INSERT INTO exchanges (
    id, name, display_name, ws_url, rest_url, supported_timeframes,
    api_limits, fee_schedule, geo_restrictions
) VALUES (
    1, 'coinbase', 'Coinbase Advanced Trade',
    'wss://advanced-trade-ws.coinbase.com', 'https://api.coinbase.com',
    ARRAY['1m', '5m', '15m', '30m', '1h', '2h', '6h', '1d'],
    '{"ws_connections_per_second": 750, "ws_messages_per_second": 8, "rest_requests_per_second": 10, "candles_per_request": 350}'::jsonb,
    '{"maker": 0.006, "taker": 0.012}'::jsonb,
    '{}'::jsonb
), (
    2, 'binance', 'Binance',
    'wss://stream.binance.com:9443', 'https://api.binance.com',
    ARRAY['1m', '3m', '5m', '15m', '30m', '1h', '2h', '4h', '6h', '8h', '12h', '1d', '3d', '1w', '1M'],
    '{"rest_weight_per_minute": 6000, "klines_weight": 2, "klines_per_request": 1000, "ws_connections_per_5min": 300, "ws_messages_per_second": 5, "streams_per_connection": 1024}'::jsonb,
    '{"maker": 0.001, "taker": 0.001}'::jsonb,
    '{"blocked_countries": ["US"]}'::jsonb
), (
    3, 'binance_us', 'Binance US',
    'wss://stream.binance.us:9443', 'https://api.binance.us',
    ARRAY['1m', '3m', '5m', '15m', '30m', '1h', '2h', '4h', '6h', '8h', '12h', '1d', '3d', '1w', '1M'],
    '{"rest_weight_per_minute": 1200, "klines_weight": 2, "klines_per_request": 1000, "ws_connections_per_5min": 300, "ws_messages_per_second": 5, "streams_per_connection": 1024}'::jsonb,
    '{"maker": 0.001, "taker": 0.001}'::jsonb,
    '{"allowed_countries": ["US"]}'::jsonb
)
ON CONFLICT (name) DO UPDATE SET
    display_name = EXCLUDED.display_name,
    ws_url = EXCLUDED.ws_url,
    rest_url = EXCLUDED.rest_url,
    supported_timeframes = EXCLUDED.supported_timeframes,
    api_limits = EXCLUDED.api_limits,
    fee_schedule = EXCLUDED.fee_schedule,
    geo_restrictions = EXCLUDED.geo_restrictions,
    updated_at = now();

-- The seed chose its ids; move the sequence past them so the next venue gets 4, not 1.
SELECT setval(pg_get_serial_sequence('exchanges', 'id'), (SELECT max(id) FROM exchanges));

COMMENT ON COLUMN exchanges.api_limits IS 'Published rate limits, e.g. rest_weight_per_minute, ws_messages_per_second.';
COMMENT ON COLUMN exchanges.fee_schedule IS 'Base-tier fees as fractions: {"maker": 0.001, "taker": 0.001}.';
COMMENT ON COLUMN exchanges.geo_restrictions IS '{"blocked_countries": [ISO codes]} or {"allowed_countries": [ISO codes]}.';
