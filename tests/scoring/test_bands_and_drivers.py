"""Bands with hysteresis and overrides; plain-language drivers that fit 255 characters."""

from __future__ import annotations

from datetime import date

from core.config.scoring import ScoringConfig
from scoring.bands import active_override, apply_hysteresis, band_of, direction_of
from scoring.drivers import DRIVERS_MAX, Driver, headline, phrase, summarize

BANDS = ScoringConfig().bands  # red < 40 <= yellow < 70 <= green


def test_bands_follow_the_thresholds() -> None:
    assert [band_of(s, BANDS) for s in (0, 39.99, 40, 69.9, 70, 100)] == [
        "red", "red", "yellow", "yellow", "green", "green"]


def test_a_score_hovering_at_a_boundary_does_not_flap_between_runs() -> None:
    band = "yellow"
    for score in (69.0, 70.5, 69.5, 71.9, 68.0):  # within 3 points of the 70 boundary
        band = apply_hysteresis(score, band, BANDS, margin=3)
        assert band == "yellow"
    assert apply_hysteresis(73.0, "yellow", BANDS, margin=3) == "green"
    assert apply_hysteresis(66.5, "green", BANDS, margin=3) == "yellow"
    assert apply_hysteresis(69.5, "green", BANDS, margin=0) == "yellow"
    assert apply_hysteresis(67.5, "green", BANDS, margin=3) == "green"


def test_hysteresis_never_holds_a_band_the_score_left_by_more_than_one_band() -> None:
    assert apply_hysteresis(10.0, "green", BANDS, margin=3) == "red"
    assert apply_hysteresis(55.0, None, BANDS, margin=3) == "yellow"


def test_an_override_holds_until_its_expiry_date_inclusive() -> None:
    assert active_override("Red", date(2026, 6, 30), date(2026, 6, 30), BANDS) == (
        "red", "band set to red by a CSM until 2026-06-30")
    assert active_override("red", date(2026, 6, 30), date(2026, 7, 1), BANDS) == (
        None, "override red expired on 2026-06-30")
    assert active_override("purple", None, date(2026, 7, 1), BANDS)[0] is None
    assert active_override(None, None, date(2026, 7, 1), BANDS) == (None, "no manual override")


def test_direction_is_flat_within_the_flat_band() -> None:
    assert [direction_of(d, 2) for d in (None, -14, -2, 0, 2, 2.5)] == [None, "down", "flat", "flat", "flat", "up"]


def test_the_example_summary_reads_as_the_issue_shows() -> None:
    drivers = [Driver(phrase("nps_latest", 3.0), -20), Driver(phrase("open_high_priority_tickets", 2.0), -10),
               Driver(phrase("days_since_exec_touch", 120.0), -5)]
    assert summarize(headline(42.4, -14.2, 30), [], drivers) == (
        "42 (down 14 in 30d): NPS detractor (3/10); 2 open P1/P2 tickets; no exec contact in 120d")


def test_phrases_for_missing_and_recent_values() -> None:
    assert phrase("csat_avg_180d", None, "CSAT") == "CSAT: no data"
    assert phrase("days_since_two_way_touch", 12.0) == "two-way touch 12d ago"
    assert phrase("thread_count", 1.0) == "1 engaged contact"
    assert phrase("usage_trend", -0.35) == "usage down 35%"
    assert headline(61.0, 0.3, 30) == "61 (flat over 30d)"
    assert headline(61.0, None, None) == "61"


def test_the_summary_fits_255_characters_keeps_override_and_low_confidence_and_never_cuts_a_clause() -> None:
    drivers = [Driver(f"driver number {i} with a fairly long description of what happened", -i) for i in range(20)]
    text = summarize("35 (down 20 in 30d)", ["band set to red by a CSM until 2026-12-31"], drivers,
                     ["low confidence (40% of weight has data)"])
    assert len(text) <= DRIVERS_MAX
    assert text.startswith("35 (down 20 in 30d): band set to red by a CSM until 2026-12-31; driver number 0 ")
    assert text.endswith("; low confidence (40% of weight has data)")
    clauses = text.split(": ", 1)[1].split("; ")
    assert all(c in {d.text for d in drivers} for c in clauses[1:-1])
    # 233 characters with two drivers; a third (65 more) would not fit.
    assert (len(clauses), len(text)) == (4, 233)


def _summarize_by_joining(head: str, first: list[str], drivers: list[Driver], last: list[str], limit: int) -> str:
    """The plain definition summarize must keep: re-join every candidate, keep it when the whole still fits."""
    reserve = sum(len(c) + 2 for c in last)
    parts: list[str] = []

    def fits(clause: str, room: int) -> bool:
        return len(head) + 2 + len("; ".join([*parts, clause])) + room <= limit

    for clause in first:
        if fits(clause, reserve):
            parts.append(clause)
    for clause in dict.fromkeys(d.text for d in drivers):
        if clause not in parts and fits(clause, reserve):
            parts.append(clause)
    for clause in last:
        if fits(clause, 0):
            parts.append(clause)
    return f"{head}: {'; '.join(parts)}" if parts else head


def test_summarize_matches_its_plain_definition_on_random_clauses() -> None:
    from hypothesis import given, settings
    from hypothesis import strategies as st

    words = st.text(alphabet="abc xyz", min_size=1, max_size=60)

    @settings(max_examples=300, deadline=None)
    @given(head=st.text(alphabet="0123456789 ()", max_size=25), first=st.lists(words, max_size=2),
           texts=st.lists(words, max_size=14), last=st.lists(words, max_size=2), limit=st.integers(10, 255))
    def check(head: str, first: list[str], texts: list[str], last: list[str], limit: int) -> None:
        drivers = [Driver(t, -1.0) for t in texts]
        got = summarize(head, first, drivers, last, limit=limit)
        assert got == _summarize_by_joining(head, first, drivers, last, limit)
        assert len(got) <= max(limit, len(head))

    check()
