"""The indicator worker: MACD-V on every closed candle, with state any worker can continue."""
