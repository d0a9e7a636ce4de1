-- The pre-release (user-scoped) schema, recorded as it was: users, their exchange accounts keyed
-- by a free-text exchange name, their positions, and alert history.
-- alert_history.exchange_id points at user_exchanges here: that was the original's mistake, kept
-- so the history is honest; a later migration repoints it at exchanges(id).

CREATE TABLE users (
    id serial PRIMARY KEY,
    username text NOT NULL,
    email text,
    display_name text,
    role text NOT NULL DEFAULT 'user',
    settings jsonb NOT NULL DEFAULT '{}'::jsonb,
    is_active boolean NOT NULL DEFAULT true,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT users_username_key UNIQUE (username),
    CONSTRAINT users_email_key UNIQUE (email)
);

CREATE TABLE user_exchanges (
    id serial PRIMARY KEY,
    user_id integer NOT NULL,
    exchange_name text NOT NULL,
    display_name text,
    credentials jsonb NOT NULL DEFAULT '{}'::jsonb,
    is_active boolean NOT NULL DEFAULT true,
    is_default boolean NOT NULL DEFAULT false,
    last_connected_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT user_exchanges_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES users (id) ON DELETE CASCADE
);

CREATE INDEX user_exchanges_user_id_idx ON user_exchanges (user_id);

-- At most one default exchange account per user.
CREATE UNIQUE INDEX user_exchanges_one_default_idx ON user_exchanges (user_id) WHERE is_default;

CREATE TABLE positions (
    id serial PRIMARY KEY,
    user_exchange_id integer NOT NULL,
    symbol text NOT NULL,
    quantity numeric NOT NULL DEFAULT 0,
    value numeric,
    last_synced_at timestamptz NOT NULL DEFAULT now(),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT positions_user_exchange_id_fkey FOREIGN KEY (user_exchange_id)
        REFERENCES user_exchanges (id) ON DELETE CASCADE,
    CONSTRAINT positions_user_exchange_id_symbol_key UNIQUE (user_exchange_id, symbol)
);

CREATE TABLE alert_history (
    id bigserial PRIMARY KEY,
    user_id integer,
    exchange_id integer,
    symbol text NOT NULL,
    timeframe text NOT NULL,
    alert_type text NOT NULL,
    trigger_label text NOT NULL,
    trigger_value double precision,
    price double precision,
    triggered_at timestamptz NOT NULL DEFAULT now(),
    details jsonb NOT NULL DEFAULT '{}'::jsonb,
    CONSTRAINT alert_history_user_id_fkey FOREIGN KEY (user_id)
        REFERENCES users (id) ON DELETE SET NULL,
    CONSTRAINT alert_history_exchange_id_fkey FOREIGN KEY (exchange_id)
        REFERENCES user_exchanges (id) ON DELETE SET NULL
);

CREATE INDEX alert_history_triggered_at_idx ON alert_history (triggered_at DESC);

COMMENT ON COLUMN positions.symbol IS 'What is held, as the exchange names it (an asset such as BTC).';
COMMENT ON COLUMN positions.value IS 'Value of the holding in the quote currency (USD) at last_synced_at.';
