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
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, Table, delete, exists, select

from core.bulk import gc_paused
from core.config.scoring import FLAG_NAMES, ScoringConfig
from scoring.bands import active_override, apply_hysteresis, band_of, direction_of
from scoring.drivers import Driver, headline, phrase, summarize
from scoring.flags import FlagState, flag_states
from scoring.scorecard import CardResult, apply_scorecard, assign_scorecards
from scoring.signals import SignalFrame, compute_signals, second_connection_pays
from store.models import Account, ScoreHistory
from store.upsert import append_rows

log = logging.getLogger(__name__)

SH: Table = ScoreHistory.__table__  # type: ignore[assignment]
ACC: Table = Account.__table__  # type: ignore[assignment]
PERSIST_BATCH = 2_000
MAX_DRIVERS = 10  # more never fit in 255 characters


@dataclass(frozen=True, slots=True)
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


@dataclass
class ScoringResult:
    run_id: str
    as_of: datetime
    accounts: list[AccountScore]
    band_counts: dict[str, int]
    movers: list[AccountScore]  # accounts whose band changed against the last stored score
    seconds: float
    scorecard_counts: dict[str, int] = field(default_factory=dict)
    history_pruned: int = 0  # stored scores deleted as older than history_keep_days


@dataclass(frozen=True, slots=True)
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


def prune_history(engine: Engine, before: datetime, *, batch: int = 20_000) -> int:
    """Delete stored scores dated (as_of) before ``before``, except each account's latest; returns how many.

    In transactions of ``batch`` rows, so a large first prune holds no long lock. The old rows are found through
    ix_score_history_as_of and each one's newer sibling through ix_score_history_account_as_of: the cost follows
    what is deleted, not the history's length.
    """
    h, newer = SH.alias("h"), SH.alias("newer")
    doomed = (
        select(h.c.id)
        .where(h.c.as_of < before,
               exists().where(newer.c.account_id == h.c.account_id, newer.c.as_of > h.c.as_of))
        .limit(batch)
    )
    deleted = 0
    while True:
        with engine.begin() as conn:
            count = conn.execute(delete(SH).where(SH.c.id.in_(doomed.scalar_subquery()))).rowcount
        deleted += count
        if count < batch:
            return deleted


def _history_on_own_connection(engine: Engine, as_of: datetime, trend_days: int,
                                account_ids: Sequence[int] | None) -> History:
    with engine.connect() as own:
        return load_history(own, as_of, trend_days, account_ids)


def load_history(conn: Connection, as_of: datetime, trend_days: int,
                 account_ids: Sequence[int] | None = None) -> History:
    """Per account, the latest stored score at or before ``as_of``, and at or before ``as_of - trend_days``."""

    def latest(cutoff: datetime) -> dict[int, PastScore]:
        # One index seek per account (ix_score_history_account_as_of) for its latest row's id, then that row:
        # the time does not grow with the history's length, which grows by one row per account per run.
        h = SH.alias("h")
        last_id = (
            select(h.c.id)
            .where(h.c.account_id == ACC.c.id, h.c.as_of <= cutoff)
            .order_by(h.c.as_of.desc(), h.c.id.desc())
            .limit(1)
            .scalar_subquery()
        )
        stmt = select(SH.c.account_id, SH.c.score, SH.c.as_of, SH.c.band, SH.c.computed_band).select_from(
            ACC.join(SH, SH.c.id == last_id)
        )
        if account_ids is not None:
            stmt = stmt.where(ACC.c.id.in_(list(account_ids)))
        return {r.account_id: PastScore(r.score, _aware(r.as_of), r.band, r.computed_band)
                for r in conn.execute(stmt)}

    return History(previous=latest(as_of), trend_base=latest(as_of - timedelta(days=trend_days)))


@dataclass
class _CardColumns:
    """Some accounts of one scorecard as Python lists (row i = the i-th of those accounts), rounded once.

    Built by numpy per chunk of accounts, so the per-account work that remains is assembling text and dicts,
    and memory holds one chunk's lists, not the whole portfolio's.
    """

    raw: list[Sequence[float | str | None]]  # per measure: raw values rounded to 4 digits, None for no data
    points: list[list[float]]  # per account: points per measure (NaN where skipped)
    points_r: list[list[float | None]]  # the same rounded to 2 digits, None where skipped
    weights: list[list[float]]  # per account: effective weight per measure
    contributions: list[list[float]]  # per account: weight x points, rounded to 2 digits (0 where skipped)
    has_data: list[list[bool]]
    negative: list[list[int]]  # per account: measures pulling the score down, most first (ties by measure order)
    positive: list[list[int]]  # per account: measures lifting it, most first
    shares: list[float]  # nominal share per measure
    shares_r: list[float]  # rounded to 4 digits

    @classmethod
    def of(cls, cr: CardResult, rows: np.ndarray, *, full: bool = True) -> _CardColumns:
        """Columns of these rows of ``cr``; without ``full``, only what a score needs (not what history stores)."""
        raw: list[Sequence[float | str | None]] = []
        for col in cr.raw:
            if isinstance(col, list):
                raw.append([col[r] for r in rows.tolist()])
            else:
                raw.append(_nones(np.round(col[rows].astype(float), 4).tolist()))
        points, weights = cr.points[rows], cr.weights[rows]
        skipped = np.isnan(points)
        used = (weights > 0) & ~skipped
        impact = np.where(used, weights * (points - 50.0), 0.0)
        return cls(
            raw=raw,
            points=points.tolist(),
            points_r=[_nones(row) for row in np.round(points, 2).tolist()] if full else [],
            weights=weights.tolist(),
            contributions=np.round(np.where(skipped, 0.0, weights * points), 2).tolist() if full else [],
            has_data=cr.has_data[rows].tolist() if full else [],
            negative=_ranked(impact, impact < 0),
            positive=_ranked(-impact, impact > 0),
            shares=[float(x) for x in cr.shares],
            shares_r=[round(float(x), 4) for x in cr.shares],
        )


def _nones(values: list[float]) -> list[float | None]:
    isnan = math.isnan
    return [None if isnan(v) else v for v in values]


def _ranked(key: np.ndarray, keep: np.ndarray) -> list[list[int]]:
    """Per row, the column indices where ``keep``, ascending by ``key`` (ties: lower index first)."""
    order = np.argsort(np.where(keep, key, np.inf), axis=1, kind="stable")
    counts = keep.sum(axis=1).tolist()
    return [row[:k] for row, k in zip(order.tolist(), counts, strict=True)]


@dataclass(frozen=True)
class AccountCore:
    """What an explanation and a run both need of one account; computed once, by ``FrameScores.core``."""

    score: AccountScore
    flags: dict[str, FlagState]
    signals: dict[str, float | None]
    override_band: str | None
    override_note: str
    trend_days: int | None
    past_score: float | None
    hysteresis_held: bool  # the band stayed where it was although the raw band differs


@dataclass(frozen=True)
class AccountDetail(AccountCore):
    """Everything behind one account's score: the core plus every measure, phrased."""

    as_of: datetime
    measures: list[MeasureDetail]


@dataclass
class FrameScores:
    """Scorecards applied to a frame; ``detail(pos)`` (explanations) and ``summary(pos)`` (runs) per account."""

    frame: SignalFrame
    config: ScoringConfig
    cards: list[CardResult]
    card_of: np.ndarray  # position -> index into cards
    row_of: np.ndarray  # position -> row in that card's result
    history: History
    # card -> (columns of some of its accounts, row in the card -> index in those columns); one chunk at a time
    _block: dict[int, tuple[_CardColumns, dict[int, int]]] = field(default_factory=dict, repr=False)

    def score(self, pos: int) -> float:
        return float(self.cards[self.card_of[pos]].score[self.row_of[pos]])

    def _prepare(self, positions: Sequence[int], *, full: bool = True) -> None:
        """Build the per-card columns of these accounts, dropping those of the previous chunk."""
        pos = np.asarray(positions, dtype=int)
        cards = self.card_of[pos]
        self._block = {}
        for card in np.unique(cards).tolist():
            rows = self.row_of[pos[cards == card]]
            index = {r: i for i, r in enumerate(rows.tolist())}
            self._block[card] = (_CardColumns.of(self.cards[card], rows, full=full), index)

    def _columns_of(self, pos: int, *, full: bool = False) -> tuple[CardResult, _CardColumns, int]:
        card, row = int(self.card_of[pos]), int(self.row_of[pos])
        block = self._block.get(card)
        if block is None or row not in block[1] or (full and not block[0].has_data):
            self._prepare([pos])
            block = self._block[card]
        return self.cards[card], block[0], block[1][row]

    def core(self, pos: int, values: dict[str, float | None] | None = None) -> AccountCore:
        """Score, band (hysteresis, override), trend, flags and the 255-character drivers of one account."""
        cfg, frame = self.config, self.frame
        acc = frame.accounts[pos]
        cr, cols, i = self._columns_of(pos)
        row = int(self.row_of[pos])
        score = float(cr.score[row])
        coverage = float(cr.coverage[row])
        values = frame.row(pos) if values is None else values
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
        if computed == cfg.bands[-1].name:
            chosen = cols.positive[i]
            flag_texts = [flags["expansion_signal"].reason] if flags["expansion_signal"].on else []
        else:
            chosen = cols.negative[i]
            flag_texts = [self._flag_text(pos, n) for n in ("champion_gone", "single_threaded", "lonely_client")
                          if flags[n].on]
        weights = cols.weights[i]
        points = cols.points[i]
        measures = cr.card.measures
        drivers = [Driver(self._phrase(pos, measures[j].signal, cols.raw[j][i], measures[j].label),
                          weights[j] * (points[j] - 50.0)) for j in chosen[:MAX_DRIVERS]]
        ordered = [*drivers[:3], *(Driver(t, 0.0) for t in flag_texts), *drivers[3:]]
        first = [note] if override else []
        last = [f"low confidence ({coverage:.0%} of weight has data)"] if low_conf else []
        text = summarize(headline(score, delta, trend_days), first, ordered, last)
        days_to_renewal = values.get("days_to_renewal")
        thread_count = values.get("thread_count")
        result = AccountScore(
            account_id=acc.id, source=acc.source, external_id=acc.external_id, name=acc.name,
            score=round(score, 2), band=band, previous_band=prev.band if prev else None, computed_band=computed,
            coverage=round(coverage, 4), low_confidence=low_conf, trend_delta=_r(delta),
            direction=direction_of(delta, cfg.flat_points),
            relationship_capital=_r(values.get("relationship_capital")),
            thread_count=None if thread_count is None else int(thread_count),
            flags={n: flags[n].on for n in FLAG_NAMES}, drivers=text, scorecard=cr.card.name,
            days_to_renewal=None if days_to_renewal is None else int(days_to_renewal), arr=acc.arr, tier=acc.tier,
        )
        return AccountCore(result, flags, values, override, note, trend_days, base.score if base else None,
                     computed != raw_band)

    def detail(self, pos: int) -> AccountDetail:
        """One account's full result, every measure phrased (explanations)."""
        core = self.core(pos)
        cr, cols, i = self._columns_of(pos, full=True)
        measures: list[MeasureDetail] = []
        for j, m in enumerate(cr.card.measures):
            raw, pts, w = cols.raw[j][i], cols.points[i][j], cols.weights[i][j]
            measures.append(MeasureDetail(
                m.name, m.label or m.name.replace("_", " "), m.signal, raw, None if math.isnan(pts) else pts,
                cols.shares[j], w, 0.0 if math.isnan(pts) else w * pts, not cols.has_data[i][j], m.missing,
                self._phrase(pos, m.signal, raw, m.label),
            ))
        shared = {f.name: getattr(core, f.name) for f in fields(AccountCore)}
        return AccountDetail(**shared, as_of=self.frame.as_of, measures=measures)

    def summaries(
        self, positions: range, run_id: str, scored_at: datetime, *, rows: bool = True
    ) -> list[tuple[AccountScore, dict[str, Any]]]:
        """Each account's result and, with ``rows``, its score_history row (else an empty dict).

        This is a run's path: no per-measure phrasing, numbers rounded per chunk and card by numpy.
        """
        frame = self.frame
        names = frame.signal_names()
        matrix = frame.matrix()[positions.start : positions.stop]
        plain = matrix.tolist()
        rounded = np.round(matrix, 4).tolist() if rows else []
        self._prepare(positions, full=rows)
        isnan = math.isnan
        out: list[tuple[AccountScore, dict[str, Any]]] = []
        for k, pos in enumerate(positions):
            values = dict(zip(names, _nones(plain[k]), strict=True))
            core = self.core(pos, values)
            if not rows:
                out.append((core.score, {}))
                continue
            cr, cols, i = self._columns_of(pos)
            points_r, contributions, has_data = cols.points_r[i], cols.contributions[i], cols.has_data[i]
            s = core.score
            out.append((s, {
                "run_id": run_id, "account_id": s.account_id, "scored_at": scored_at, "as_of": frame.as_of,
                "scorecard": s.scorecard, "score": s.score, "band": s.band, "computed_band": s.computed_band,
                "coverage": s.coverage, "low_confidence": s.low_confidence, "trend_delta": s.trend_delta,
                "trend_days": core.trend_days if core.trend_days is not None else self.config.trend_days,
                "direction": s.direction, "relationship_capital": s.relationship_capital,
                "thread_count": s.thread_count,
                "flags": {n: {"on": f.on, "reason": f.reason} for n, f in core.flags.items()},
                "measures": [
                    {"name": m.name, "signal": m.signal, "raw": cols.raw[j][i], "points": points_r[j],
                     "weight": cols.shares_r[j], "contribution": contributions[j], "missing": not has_data[j]}
                    for j, m in enumerate(cr.card.measures)
                ],
                # Signal values are floats (a missing one is NaN, left out).
                "signals": {n: v for n, v in zip(names, rounded[k], strict=True) if not isnan(v)},
                "drivers": s.drivers, "override_band": core.override_band,
            }))
        return out

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


def _chunks(n: int, size: int) -> Iterator[range]:
    for start in range(0, n, size):
        yield range(start, min(n, start + size))


@gc_paused()  # 100k accounts' scores, drivers and history rows: see core.bulk
def score_accounts(
    engine: Engine,
    config: ScoringConfig,
    *,
    run_id: str,
    as_of: datetime | None = None,
    persist: bool = True,
    account_ids: Sequence[int] | None = None,
    workers: int | None = None,
) -> ScoringResult:
    """Score every live account as of ``as_of`` (default now, UTC); with ``persist``, one score_history row each.

    ``account_ids`` limits the accounts scored (percentiles and portfolio comparisons are then within them).
    ``workers``: processes computing the signals side by side (``scoring.partitions``); unset: one.
    """
    started = time.perf_counter()
    as_of = _aware(as_of) if as_of is not None else datetime.now(UTC)
    with engine.connect() as conn:
        if not second_connection_pays(conn):
            frame = compute_signals(conn, config, as_of, account_ids=account_ids, parallel=True, workers=workers or 1)
            history = load_history(conn, as_of, config.trend_days, account_ids)
        else:  # a database server reads the stored scores while the signals are computed (1 s of 9 at 100k)
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="history") as thread:
                past = thread.submit(_history_on_own_connection, engine, as_of, config.trend_days, account_ids)
                frame = compute_signals(conn, config, as_of, account_ids=account_ids, parallel=True,
                                        workers=workers or 1)
                history = past.result()
    fs = score_frame(frame, config, history)
    scored_at = datetime.now(UTC)
    results: list[AccountScore] = []
    for chunk in _chunks(len(frame), PERSIST_BATCH):
        summaries = fs.summaries(chunk, run_id, scored_at, rows=persist)
        results.extend(score for score, _ in summaries)
        if persist and summaries:
            with engine.begin() as conn:
                append_rows(conn, SH, [row for _, row in summaries])
    pruned = 0
    if persist and account_ids is None and config.history_keep_days is not None:
        pruned = prune_history(engine, as_of - timedelta(days=config.history_keep_days))
    bands = Counter(r.band for r in results)
    result = ScoringResult(
        run_id=run_id,
        as_of=as_of,
        accounts=results,
        band_counts={b.name: bands.get(b.name, 0) for b in config.bands},
        movers=[r for r in results if r.previous_band is not None and r.previous_band != r.band],
        seconds=time.perf_counter() - started,
        scorecard_counts=dict(Counter(r.scorecard for r in results)),
        history_pruned=pruned,
    )
    if pruned:
        log.info("deleted %d stored scores older than %d days (each account keeps its latest)", pruned,
                 config.history_keep_days, extra={"run_id": run_id})
    log.info(
        "scored %d accounts as of %s in %.2fs: %s; %d movers",
        len(results), as_of.isoformat(), result.seconds, result.band_counts, len(result.movers),
        extra={"run_id": run_id},
    )
    return result
