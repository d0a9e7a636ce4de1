"""Coinbase Advanced Trade adapter: schemas, parsing, close detection, REST client, live feed."""
