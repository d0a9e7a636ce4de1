-- Alerts are exchange-scoped now: alert_history.exchange_id references exchanges(id) (the
-- pre-release schema pointed it at user_exchanges by mistake). Also adds the alert's deterministic
-- id (consumers and this table drop duplicates by it) and the candle it was raised on.

ALTER TABLE alert_history DROP CONSTRAINT alert_history_exchange_id_fkey;

-- Old rows held a user_exchanges id: translate it to that account's exchange (NULL when unknown).
UPDATE alert_history AS ah
SET exchange_id = ue.exchange_id
FROM user_exchanges AS ue
WHERE ah.exchange_id = ue.id;

ALTER TABLE alert_history ADD CONSTRAINT alert_history_exchange_id_fkey
    FOREIGN KEY (exchange_id) REFERENCES exchanges (id) ON DELETE RESTRICT;

ALTER TABLE alert_history ADD COLUMN alert_id text;

UPDATE alert_history SET alert_id = 'legacy:' || id WHERE alert_id IS NULL;

ALTER TABLE alert_history ALTER COLUMN alert_id SET NOT NULL;

ALTER TABLE alert_history ADD CONSTRAINT alert_history_alert_id_key UNIQUE (alert_id);

-- Start of the candle's bucket, epoch milliseconds UTC (the Redis contract's unit); NULL on
-- pre-release rows, which never recorded it.
ALTER TABLE alert_history ADD COLUMN candle_timestamp bigint;

CREATE INDEX alert_history_exchange_triggered_idx ON alert_history (exchange_id, triggered_at DESC);

COMMENT ON COLUMN alert_history.exchange_id IS 'Source exchange; NULL only on pre-release rows that could not be mapped.';
COMMENT ON COLUMN alert_history.alert_id IS 'Deterministic alert id; inserts are idempotent by it.';
COMMENT ON COLUMN alert_history.candle_timestamp IS 'Start of the candle the alert was raised on, epoch ms UTC.';
