"""Alert evaluator: MACD-V updates in, alerts out on channel:alerts:{exchange_id}."""
