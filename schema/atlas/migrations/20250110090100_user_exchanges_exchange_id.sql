-- EXC-02: user_exchanges.exchange_id references exchanges(id). Nullable while accounts whose free-text
-- exchange_name matches no venue are sorted out; exchange_name stays as the legacy column.

ALTER TABLE user_exchanges ADD COLUMN exchange_id integer;

ALTER TABLE user_exchanges ADD CONSTRAINT user_exchanges_exchange_id_fkey
    FOREIGN KEY (exchange_id) REFERENCES exchanges (id) ON DELETE RESTRICT;

CREATE INDEX user_exchanges_exchange_id_idx ON user_exchanges (exchange_id);

-- Backfill by name, case-insensitively; spaces and dashes count as underscores ("Binance US" and
-- "binance-us" both mean binance_us). Rows that match nothing keep a NULL exchange_id.
UPDATE user_exchanges AS ue
SET exchange_id = e.id
FROM exchanges AS e
WHERE ue.exchange_id IS NULL
  AND lower(translate(btrim(ue.exchange_name), ' -', '__')) = lower(e.name);

COMMENT ON COLUMN user_exchanges.exchange_id IS 'The venue; NULL while exchange_name matches no exchanges row.';
COMMENT ON COLUMN user_exchanges.exchange_name IS 'Legacy free-text venue name; exchange_id is authoritative.';
COMMENT ON COLUMN user_exchanges.credentials IS 'Never plain text: {"env": {field: ENV_VAR_NAME}} or {"encrypted": {field: ciphertext}}.';
