"""Score every live account as of a moment: signals -> scorecards -> bands (hysteresis, override) -> history.

``score_accounts`` is what a run calls; ``score_frame`` + ``FrameScores.detail`` are shared with explanations
and backtests, so the number a person sees is computed exactly one way.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, Table, func, insert, select

from core.config.scoring import FLAG_NAMES, ScoringConfig
from scoring.bands import active_override, apply_hysteresis, band_of, direction_of
from scoring.drivers import Driver, headline, phrase, summarize
from scoring.flags import FlagState, flag_states
from scoring.scorecard import CardResult, apply_scorecard, assign_scorecards
from scoring.signals import SignalFrame, compute_signals
from store.models import ScoreHistory

log = logging.getLogger(__name__)

SH: Table = ScoreHistory.__table__  # type: ignore[assignment]
PERSIST_BATCH = 2_000
MAX_DRIVERS = 10  # more never fit in 255 characters


@dataclass(frozen=True)
class AccountScore:
    """One account's result, as writeback and reports use it. Scores are points 0-100; days are whole days."""

    account_id: int
    source: str
    external_id: str
    name: str | None
    score: float
    band: str  # after hysteresis and override
    previous_band: str | None  # the band of the last stored score
    computed_band: str  # after hysteresis, before override
    coverage: float  # 0-1
    low_confidence: bool
    trend_delta: float | None
    direction: str | None  # up | down | flat
    relationship_capital: float | None
    thread_count: int | None
    flags: dict[str, bool]
    drivers: str  # <= 255 characters
    scorecard: str
    days_to_renewal: int | None
    arr: float | None
    tier: str | None


@dataclass(frozen=True)
class MeasureDetail:
    """One measure of one account: raw value, points 0-100, nominal and effective weight (0-1), contribution."""

    name: str
    label: str
    signal: str
    raw: float | str | None
    points: float | None  # None when skipped for missing data
    weight: float  # nominal share of the scorecard's weight
    effective_weight: float  # share after re-weighting over measures with data
    contribution: float  # points this measure adds to the score (effective_weight x points)
    missing: bool
    policy: str
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "signal": self.signal, "raw": self.raw, "points": _r(self.points),
            "weight": round(self.weight, 4), "effective_weight": round(self.effective_weight, 4),
            "contribution": round(self.contribution, 2), "missing": self.missing, "policy": self.policy,
            "label": self.label, "text": self.text,
        }


@dataclass(frozen=True)
class AccountDetail:
    """Everything behind one account's score."""

    score: AccountScore
    as_of: datetime
    measures: list[MeasureDetail]
    flags: dict[str, FlagState]
    signals: dict[str, float | None]
    override_band: str | None
    override_note: str
    trend_days: int | None
    past_score: float | None
    hysteresis_held: bool  # the band stayed where it was although the raw band differs


@dataclass
class ScoringResult:
    run_id: str
    as_of: datetime
    accounts: list[AccountScore]
    band_counts: dict[str, int]
    movers: list[AccountScore]  # accounts whose band changed against the last stored score
    seconds: float
    scorecard_counts: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class PastScore:
    score: float
    as_of: datetime
    band: str  # after override
    computed_band: str  # after hysteresis, before override


@dataclass
class History:
    previous: dict[int, PastScore]  # the last stored score at or before as_of
    trend_base: dict[int, PastScore]  # the last stored score at or before as_of - trend_days


def _r(v: float | None, digits: int = 2) -> float | None:
    return None if v is None or (isinstance(v, float) and math.isnan(v)) else round(float(v), digits)


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def load_history(conn: Connection, as_of: datetime, trend_days: int,
                 account_ids: Sequence[int] | None = None) -> History:
    """Per account, the latest stored score at or before ``as_of``, and at or before ``as_of - trend_days``."""

    def latest(cutoff: datetime) -> dict[int, PastScore]:
        ranked = (
            select(
                SH.c.account_id, SH.c.score, SH.c.as_of, SH.c.band, SH.c.computed_band,
                func.row_number().over(partition_by=SH.c.account_id, order_by=(SH.c.as_of.desc(), SH.c.id.desc()))
                .label("rn"),
            )
            .where(SH.c.as_of <= cutoff)
        )
        if account_ids is not None:
            ranked = ranked.where(SH.c.account_id.in_(list(account_ids)))
        sub = ranked.subquery("ranked")
        rows = conn.execute(
            select(sub.c.account_id, sub.c.score, sub.c.as_of, sub.c.band, sub.c.computed_band).where(sub.c.rn == 1)
        )
        return {r.account_id: PastScore(r.score, _aware(r.as_of), r.band, r.computed_band) for r in rows}

    return History(previous=latest(as_of), trend_base=latest(as_of - timedelta(days=trend_days)))


@dataclass
class FrameScores:
    """Scorecards applied to a frame; ``detail(pos)`` builds one account's full result."""

    frame: SignalFrame
    config: ScoringConfig
    cards: list[CardResult]
    card_of: np.ndarray  # position -> index into cards
    row_of: np.ndarray  # position -> row in that card's result
    history: History

    def score(self, pos: int) -> float:
        return float(self.cards[self.card_of[pos]].score[self.row_of[pos]])

    def detail(self, pos: int, *, full: bool = True) -> AccountDetail:
        """One account's result; ``full`` also phrases every measure (explanations), not only the drivers."""
        cfg, frame = self.config, self.frame
        acc = frame.accounts[pos]
        cr = self.cards[self.card_of[pos]]
        row = int(self.row_of[pos])
        card_labels = [m.label for m in cr.card.measures]
        score = float(cr.score[row])
        coverage = float(cr.coverage[row])
        values = frame.row(pos)
        measures: list[MeasureDetail] = []
        drivers: list[Driver] = []
        points_row, weights_row, data_row = cr.points[row].tolist(), cr.weights[row].tolist(), cr.has_data[row].tolist()
        shares = cr.share_list
        for j, m in enumerate(cr.card.measures):
            raw_col = cr.raw[j]
            raw: float | str | None = raw_col[row] if isinstance(raw_col, list) else _r(raw_col.item(row), 4)
            pts, w = points_row[j], weights_row[j]
            text = self._phrase(pos, m.signal, raw, m.label) if full else ""
            measures.append(MeasureDetail(
                m.name, m.label or m.name.replace("_", " "), m.signal, raw, None if math.isnan(pts) else pts,
                shares[j], w, 0.0 if math.isnan(pts) else w * pts, not data_row[j], m.missing, text,
            ))
            if w > 0 and not math.isnan(pts):
                drivers.append(Driver(text or f"{j}", w * (pts - 50.0)))
        flags = flag_states(frame, pos, cfg, values)
        prev = self.history.previous.get(acc.id)
        base = self.history.trend_base.get(acc.id)
        delta = score - base.score if base else None
        trend_days = round((frame.as_of - base.as_of).total_seconds() / 86400) if base else None
        raw_band = band_of(score, cfg.bands)
        computed = apply_hysteresis(score, prev.computed_band if prev else None, cfg.bands, cfg.hysteresis_points)
        override, note = active_override(acc.override_band, acc.override_until, frame.as_of.date(), cfg.bands)
        band = override or computed
        low_conf = coverage < cfg.coverage_floor
        top_band = cfg.bands[-1].name
        if computed == top_band:
            chosen = sorted((d for d in drivers if d.impact > 0), key=lambda d: -d.impact)
            flag_texts = [flags["expansion_signal"].reason] if flags["expansion_signal"].on else []
        else:
            chosen = sorted((d for d in drivers if d.impact < 0), key=lambda d: d.impact)
            flag_texts = [self._flag_text(pos, n) for n in ("champion_gone", "single_threaded", "lonely_client")
                          if flags[n].on]
        if not full:  # phrase only the drivers that can make it into the summary
            chosen = [Driver(self._phrase(pos, measures[int(d.text)].signal, measures[int(d.text)].raw,
                                          card_labels[int(d.text)]), d.impact) for d in chosen[:MAX_DRIVERS]]
        ordered = [*chosen[:3], *(Driver(t, 0.0) for t in flag_texts), *chosen[3:]]
        first = [note] if override else []
        last = [f"low confidence ({coverage:.0%} of weight has data)"] if low_conf else []
        text = summarize(headline(score, delta, trend_days), first, ordered, last)
        days_to_renewal = values.get("days_to_renewal")
        thread_count = values.get("thread_count")
        result = AccountScore(
            account_id=acc.id, source=acc.source, external_id=acc.external_id, name=acc.name,
            score=round(score, 2), band=band, previous_band=prev.band if prev else None, computed_band=computed,
            coverage=round(coverage, 4), low_confidence=low_conf, trend_delta=_r(delta),
            direction=direction_of(delta, cfg.flat_points), relationship_capital=_r(values.get("relationship_capital")),
            thread_count=None if thread_count is None else int(thread_count),
            flags={n: flags[n].on for n in FLAG_NAMES}, drivers=text, scorecard=cr.card.name,
            days_to_renewal=None if days_to_renewal is None else int(days_to_renewal), arr=acc.arr, tier=acc.tier,
        )
        return AccountDetail(
            score=result, as_of=frame.as_of, measures=measures, flags=flags, signals=values, override_band=override,
            override_note=note, trend_days=trend_days, past_score=base.score if base else None,
            hysteresis_held=computed != raw_band,
        )

    def _phrase(self, pos: int, signal: str, raw: float | str | None, label: str | None) -> str:
        if signal == "champion_gone" and raw:
            champ = self.frame.champions.get(pos)
            if champ is not None and champ.gone:
                return f"champion {champ.name} {champ.gone}"
        return phrase(signal, raw, label)

    def _flag_text(self, pos: int, name: str) -> str:
        return self._phrase(pos, name, 1.0, None)


def score_frame(frame: SignalFrame, config: ScoringConfig, history: History | None = None) -> FrameScores:
    """Apply each scorecard to the accounts it is for (vectorized)."""
    assignment = assign_scorecards(config, frame.accounts)
    cards: list[CardResult] = []
    card_of = np.zeros(len(frame), dtype=int)
    row_of = np.zeros(len(frame), dtype=int)
    for i, card in enumerate(config.scorecards):
        positions = np.flatnonzero(assignment == i)
        if positions.size == 0:
            continue
        card_of[positions] = len(cards)
        row_of[positions] = np.arange(positions.size)
        cards.append(apply_scorecard(card, frame, positions))
    return FrameScores(frame, config, cards, card_of, row_of, history or History({}, {}))


def history_row(detail: AccountDetail, run_id: str, scored_at: datetime, trend_days_config: int) -> dict[str, Any]:
    """The score_history row of one account."""
    s = detail.score
    return {
        "run_id": run_id, "account_id": s.account_id, "scored_at": scored_at, "as_of": detail.as_of,
        "scorecard": s.scorecard, "score": s.score, "band": s.band, "computed_band": s.computed_band,
        "coverage": s.coverage, "low_confidence": s.low_confidence, "trend_delta": s.trend_delta,
        "trend_days": detail.trend_days if detail.trend_days is not None else trend_days_config,
        "direction": s.direction, "relationship_capital": s.relationship_capital, "thread_count": s.thread_count,
        "flags": {n: {"on": f.on, "reason": f.reason} for n, f in detail.flags.items()},
        "measures": [
            {"name": m.name, "signal": m.signal, "raw": m.raw, "points": _r(m.points),
             "weight": round(m.weight, 4), "contribution": round(m.contribution, 2), "missing": m.missing}
            for m in detail.measures
        ],
        # Signal values are floats (never NaN: a missing one is None), so rounding them needs no _r checks.
        "signals": {k: round(v, 4) for k, v in detail.signals.items() if v is not None},
        "drivers": s.drivers, "override_band": detail.override_band,
    }


def _chunks(n: int, size: int) -> Iterator[range]:
    for start in range(0, n, size):
        yield range(start, min(n, start + size))


def score_accounts(
    engine: Engine,
    config: ScoringConfig,
    *,
    run_id: str,
    as_of: datetime | None = None,
    persist: bool = True,
    account_ids: Sequence[int] | None = None,
) -> ScoringResult:
    """Score every live account as of ``as_of`` (default now, UTC); with ``persist``, one score_history row each.

    ``account_ids`` limits the accounts scored (percentiles and portfolio comparisons are then within them).
    """
    started = time.perf_counter()
    as_of = _aware(as_of) if as_of is not None else datetime.now(UTC)
    with engine.connect() as conn:
        frame = compute_signals(conn, config, as_of, account_ids=account_ids)
        history = load_history(conn, as_of, config.trend_days, account_ids)
    fs = score_frame(frame, config, history)
    scored_at = datetime.now(UTC)
    results: list[AccountScore] = []
    for chunk in _chunks(len(frame), PERSIST_BATCH):
        details = [fs.detail(pos, full=False) for pos in chunk]
        results.extend(d.score for d in details)
        if persist and details:
            rows = [history_row(d, run_id, scored_at, config.trend_days) for d in details]
            with engine.begin() as conn:
                conn.execute(insert(SH), rows)
    bands = Counter(r.band for r in results)
    result = ScoringResult(
        run_id=run_id,
        as_of=as_of,
        accounts=results,
        band_counts={b.name: bands.get(b.name, 0) for b in config.bands},
        movers=[r for r in results if r.previous_band is not None and r.previous_band != r.band],
        seconds=time.perf_counter() - started,
        scorecard_counts=dict(Counter(r.scorecard for r in results)),
    )
    log.info(
        "scored %d accounts as of %s in %.2fs: %s; %d movers",
        len(results), as_of.isoformat(), result.seconds, result.band_counts, len(result.movers),
        extra={"run_id": run_id},
    )
    return result
