"""The exchange simulator: Coinbase Advanced Trade and Binance Spot protocols on localhost."""
