"""Scoring: set-based SQL signals over the store, scorecards, relationships, explanations, trends, calibration."""
