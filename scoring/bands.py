"""Bands from scores, with hysteresis against the previous band, and a CSM's manual override until its expiry."""

from __future__ import annotations

from datetime import date

from core.config.scoring import Band


def band_of(score: float, bands: list[Band]) -> str:
    """The band whose range holds ``score`` (bands ascending by ``min_score``, the first at 0)."""
    name = bands[0].name
    for band in bands:
        if score >= band.min_score:
            name = band.name
    return name


def band_range(name: str, bands: list[Band]) -> tuple[float, float]:
    """``[low, high)`` score range of a band; the top band ends above 100."""
    for i, band in enumerate(bands):
        if band.name == name:
            high = bands[i + 1].min_score if i + 1 < len(bands) else float("inf")
            return band.min_score, high
    raise KeyError(name)


def apply_hysteresis(score: float, previous: str | None, bands: list[Band], margin: float) -> str:
    """Keep the previous band unless the score left its range by more than ``margin`` points."""
    raw = band_of(score, bands)
    if previous is None or previous == raw or previous not in {b.name for b in bands}:
        return raw
    low, high = band_range(previous, bands)
    if low - margin <= score < high + margin:
        return previous
    return raw


def active_override(value: str | None, until: date | None, as_of: date, bands: list[Band]) -> tuple[str | None, str]:
    """The override band in force at ``as_of`` (or None) and why, in plain words.

    A value naming a band (case-insensitive) is in force until ``until`` (inclusive; open-ended when empty).
    """
    if not value or not value.strip():
        return None, "no manual override"
    wanted = value.strip().lower()
    match = next((b.name for b in bands if b.name.lower() == wanted), None)
    if match is None:
        return None, f"override {value!r} ignored: not a band ({', '.join(b.name for b in bands)})"
    if until is not None and until < as_of:
        return None, f"override {match} expired on {until.isoformat()}"
    suffix = f" until {until.isoformat()}" if until else " (no expiry)"
    return match, f"band set to {match} by a CSM{suffix}"


def direction_of(delta: float | None, flat_points: float) -> str | None:
    """up | down | flat for a score change in points; None without history."""
    if delta is None:
        return None
    if delta > flat_points:
        return "up"
    if delta < -flat_points:
        return "down"
    return "flat"
