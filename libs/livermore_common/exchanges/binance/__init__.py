"""Binance Spot adapter: schemas, parsing, close detection, REST client, live feed."""
