-- Symbols per exchange with their 24h quote volume and rank (SYM-01) and tier (1 shared, 2 user).

CREATE TABLE exchange_symbols (
    id serial PRIMARY KEY,
    exchange_id integer NOT NULL,
    symbol text NOT NULL,
    base text NOT NULL,
    quote text NOT NULL,
    volume_24h double precision,
    volume_rank integer,
    tier smallint NOT NULL DEFAULT 1,
    is_active boolean NOT NULL DEFAULT true,
    last_volume_update timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT exchange_symbols_exchange_id_fkey FOREIGN KEY (exchange_id)
        REFERENCES exchanges (id) ON DELETE CASCADE,
    CONSTRAINT exchange_symbols_exchange_id_symbol_key UNIQUE (exchange_id, symbol),
    CONSTRAINT exchange_symbols_tier_check CHECK (tier IN (1, 2))
);

CREATE INDEX exchange_symbols_rank_idx ON exchange_symbols (exchange_id, volume_rank) WHERE is_active;

COMMENT ON COLUMN exchange_symbols.volume_24h IS '24h traded volume in the quote currency.';
COMMENT ON COLUMN exchange_symbols.volume_rank IS '1 = highest volume on its exchange; NULL when unranked.';
COMMENT ON COLUMN exchange_symbols.tier IS '1 = shared pool (top by volume), 2 = held by users only.';
