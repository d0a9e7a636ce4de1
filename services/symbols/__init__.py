"""The symbol-tier manager: Tier 1 by volume, Tier 2 from users' holdings, one merged list."""
