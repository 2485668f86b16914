"""The Cubescope Processing provider: one algorithm per module, all on the same pure engine."""
