"""The per-exchange ingestor: live feed + REST backfill → exchange-scoped closed candles."""
