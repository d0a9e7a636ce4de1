"""The simulated symbol universe per exchange: names, base prices, 24h volumes (Zipf), activity."""

from __future__ import annotations

import math

import msgspec

from services.sim.config import SimConfig
from services.sim.rand import gauss_of, mix, unit_of

# Real bases first (rough price levels), then synthetic SYM001, SYM002 ...
KNOWN_BASES: tuple[tuple[str, str, float], ...] = (
    ("BTC", "Bitcoin", 65000.0),
    ("ETH", "Ethereum", 3200.0),
    ("SOL", "Solana", 150.0),
    ("XRP", "XRP", 0.55),
    ("DOGE", "Dogecoin", 0.15),
    ("ADA", "Cardano", 0.45),
    ("AVAX", "Avalanche", 35.0),
    ("LINK", "Chainlink", 15.0),
    ("LTC", "Litecoin", 80.0),
    ("DOT", "Polkadot", 7.0),
    ("BCH", "Bitcoin Cash", 450.0),
    ("SHIB", "Shiba Inu", 0.000022),
    ("UNI", "Uniswap", 9.0),
    ("XLM", "Stellar", 0.11),
    ("NEAR", "NEAR Protocol", 5.5),
    ("ATOM", "Cosmos", 8.5),
    ("AAVE", "Aave", 95.0),
    ("ETC", "Ethereum Classic", 27.0),
    ("FIL", "Filecoin", 5.8),
    ("APT", "Aptos", 9.0),
    ("ARB", "Arbitrum", 1.1),
    ("OP", "Optimism", 2.4),
    ("ICP", "Internet Computer", 12.0),
    ("HBAR", "Hedera", 0.09),
    ("INJ", "Injective", 25.0),
    ("SUI", "Sui", 1.2),
    ("PEPE", "Pepe", 0.000009),
    ("CRV", "Curve DAO Token", 0.5),
    ("MKR", "Maker", 2500.0),
    ("ALGO", "Algorand", 0.18),
    ("GRT", "The Graph", 0.28),
    ("SAND", "The Sandbox", 0.45),
    ("MANA", "Decentraland", 0.42),
    ("AXS", "Axie Infinity", 7.5),
    ("EGLD", "MultiversX", 40.0),
    ("CHZ", "Chiliz", 0.11),
    ("SNX", "Synthetix", 2.9),
    ("COMP", "Compound", 55.0),
    ("1INCH", "1inch", 0.4),
    ("FET", "Fetch.ai", 1.5),
)

EXCHANGE_SALT = {"coinbase": 1, "binance": 2}
QUOTE_ASSET = {"coinbase": "USD", "binance": "USDT"}
# Coinbase is the smaller venue; both follow the same Zipf shape.
VOLUME_SHARE = {"coinbase": 0.5, "binance": 1.0}


class SymbolSpec(msgspec.Struct, frozen=True, kw_only=True):
    index: int
    name: str  # the exchange's own spelling: BTC-USD / BTCUSDT
    base: str
    base_name: str
    quote: str
    base_price: float
    decimals: int  # price decimals (tick = 10**-decimals)
    quote_volume_24h: float  # nominal, in quote currency
    trades_per_minute: float
    sigma: float  # per-minute log-price standard deviation


def symbol_name(exchange: str, base: str) -> str:
    quote = QUOTE_ASSET[exchange]
    return f"{base}-{quote}" if exchange == "coinbase" else f"{base}{quote}"


def price_decimals(price: float) -> int:
    """About six significant digits, between 2 and 8 decimals."""
    return max(2, min(8, 6 - math.floor(math.log10(price))))


def _base(index: int, seed: int, salt: int) -> tuple[str, str, float]:
    if index < len(KNOWN_BASES):
        return KNOWN_BASES[index]
    code = f"SYM{index - len(KNOWN_BASES) + 1:03d}"
    u = unit_of(mix(seed, salt, index, 7))
    return code, f"Synthetic {code}", math.exp(math.log(0.001) + u * math.log(50_000.0))


def build_universe(exchange: str, config: SimConfig) -> tuple[SymbolSpec, ...]:
    """`config.symbols` symbols, most liquid first (Zipf volumes with a little jitter)."""
    salt = EXCHANGE_SALT[exchange]
    top = config.top_quote_volume * VOLUME_SHARE[exchange]
    specs = []
    for i in range(config.symbols):
        base, base_name, price = _base(i, config.seed, salt)
        jitter = math.exp(0.15 * gauss_of(mix(config.seed, salt, i, 11)))
        volume = top * (i + 1) ** -config.volume_alpha * jitter
        specs.append(
            SymbolSpec(
                index=i,
                name=symbol_name(exchange, base),
                base=base,
                base_name=base_name,
                quote=QUOTE_ASSET[exchange],
                base_price=price,
                decimals=price_decimals(price),
                quote_volume_24h=volume,
                trades_per_minute=volume / 1440.0 / config.avg_trade_quote,
                sigma=0.0008 + 0.0012 * unit_of(mix(config.seed, i, 13)),  # same on both venues
            )
        )
    return tuple(specs)
