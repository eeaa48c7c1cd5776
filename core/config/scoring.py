"""Scorecards: measures, normalizations, weights, bands. (First version; scoring extends it.)"""

from __future__ import annotations

from core.config.base import StrictModel


class ScoringConfig(StrictModel):
    pass
