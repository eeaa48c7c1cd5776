"""What one run did, as a stored and printed report: per stream, scoring, writeback, API budget.

``RunReport`` is stored as JSON in ``runs.report`` and rendered three ways: plain text (``render_text``),
JSON (``to_dict``) and a self-contained HTML page with inline SVG charts (``render_html``; nothing is
fetched from a network when it is opened). ``summarize_scores`` builds the scoring part from the store.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape
from pydantic import BaseModel, Field
from sqlalchemy import Engine, exists, select

from store.models import Account, Run, ScoreHistory

RUN_STATUSES = ("running", "succeeded", "partial", "failed", "interrupted")
FLAG_NAMES = ("single_threaded", "lonely_client", "champion_gone", "expansion_signal")
HISTOGRAM_BINS = 10  # of 10 points each, 0-100


class StreamSummary(BaseModel):
    """One stream's pull: counts, API cost and outcome."""

    source: str
    stream: str
    records: int = 0
    rejected: int = 0
    deleted: int = 0
    pages: int = 0
    api_calls: int = 0
    retries: int = 0
    seconds: float = 0.0
    error: str | None = None
    deferred: bool = False  # skipped this run to stay within the API budget


class ApiUsage(BaseModel):
    """One system's API calls this run, against its daily limit when known."""

    system: str
    calls: int = 0
    retries: int = 0
    floor_calls: int | None = None  # the fewest calls the work could have taken (pages + write batches)
    pull_calls: int = 0  # calls the streams made (pages, plus count and limit probes)
    pull_floor: int | None = None  # one per page read
    write_calls: int = 0  # field-update calls (composite / batch update / Bulk jobs)
    write_floor: int | None = None  # ceil(records written / batch size)
    other_calls: int = 0  # everything else: current-value reads, task look-ups and creates, /limits, checks
    daily_limit: int | None = None
    remaining: int | None = None  # as last reported by the API (None when it does not say)
    reserve: int | None = None  # kept for the customer's other integrations


class BudgetLine(BaseModel):
    """The pre-run estimate for one system, and what was deferred to fit."""

    system: str
    available: int | None  # calls the agent may use this run; None: no known limit
    daily_limit: int | None = None
    remaining: int | None = None  # calls left today when the run started
    reserve: int | None = None  # calls kept for the customer's other integrations
    estimated_pull: int = 0
    estimated_write: int = 0
    deferred: list[str] = Field(default_factory=list)

    @property
    def short(self) -> bool:
        return self.available is not None and self.estimated_pull + self.estimated_write > self.available


class Mover(BaseModel):
    account_id: int
    name: str | None
    crm: str
    external_id: str
    previous_score: float
    score: float
    previous_band: str
    band: str

    @property
    def delta(self) -> float:
        return round(self.score - self.previous_score, 1)


class AtRisk(BaseModel):
    account_id: int
    name: str | None
    crm: str
    external_id: str
    score: float
    band: str
    drivers: str = ""
    flags: list[str] = Field(default_factory=list)
    low_confidence: bool = False


class ScoringSummary(BaseModel):
    accounts: int = 0
    bands: list[str] = Field(default_factory=list)  # riskiest first
    band_bounds: list[float] = Field(default_factory=list)  # each band's min_score (points), same order
    band_counts: dict[str, int] = Field(default_factory=dict)
    previous_band_counts: dict[str, int] = Field(default_factory=dict)
    band_movements: dict[str, dict[str, int]] = Field(default_factory=dict)  # previous band -> band -> accounts
    score_histogram: list[int] = Field(default_factory=lambda: [0] * HISTOGRAM_BINS)
    flag_counts: dict[str, int] = Field(default_factory=dict)
    low_confidence: int = 0
    movers: list[Mover] = Field(default_factory=list)
    at_risk: list[AtRisk] = Field(default_factory=list)


class WriteFailure(BaseModel):
    crm: str
    record_id: str
    error: str


class WritebackSummary(BaseModel):
    dry_run: bool = False
    planned_changes: int = 0
    fields_written: int = 0
    records_written: int = 0
    tasks_created: int = 0
    tasks_closed: int = 0
    tasks_deferred: int = 0  # left for a later run by the API budget
    api_calls: dict[str, int] = Field(default_factory=dict)  # writeback's own calls per CRM
    write_calls: dict[str, int] = Field(default_factory=dict)  # of those, field-update calls per CRM
    records_by_crm: dict[str, int] = Field(default_factory=dict)
    failures: list[WriteFailure] = Field(default_factory=list)
    guard_stopped: str | None = None  # the blast-radius guard's reason, when it stopped the writes


class RunReport(BaseModel):
    """Everything one run did. Stored in ``runs.report``; rendered as text, JSON and HTML."""

    run_id: str
    trigger: str = "cli"
    status: str = "running"
    dry_run: bool = False
    host: str | None = None
    started_at: datetime
    finished_at: datetime | None = None
    streams: list[StreamSummary] = Field(default_factory=list)
    api: list[ApiUsage] = Field(default_factory=list)
    budget: list[BudgetLine] = Field(default_factory=list)
    linked: dict[str, int] = Field(default_factory=dict)
    scoring: ScoringSummary | None = None
    writeback: WritebackSummary | None = None
    deferred: list[str] = Field(default_factory=list)  # plain-language notes on what waits for the next run
    errors: list[str] = Field(default_factory=list)
    html_path: str | None = None

    @property
    def duration_seconds(self) -> float | None:
        if self.finished_at is None:
            return None
        return round((self.finished_at - self.started_at).total_seconds(), 3)

    def records_by_source(self) -> dict[str, int]:
        """Records pulled per source this run."""
        totals: Counter[str] = Counter()
        for s in self.streams:
            totals[s.source] += s.records
        return dict(totals)

    def failing_streams(self) -> list[StreamSummary]:
        return [s for s in self.streams if s.error]

    def to_dict(self) -> dict[str, Any]:
        payload = self.model_dump(mode="json")
        payload["duration_seconds"] = self.duration_seconds
        return payload

    def render_text(self) -> str:
        """The report as plain lines for a terminal or a log."""
        return _TEMPLATES.get_template("run_report.txt.j2").render(report=self, fmt=_fmt).strip() + "\n"

    def render_html(self) -> str:
        """A self-contained HTML page (inline CSS and SVG) with the run's charts and tables."""
        charts: dict[str, Markup] = {}
        if self.scoring is not None:
            charts = {
                "distribution": score_distribution_svg(self.scoring),
                "movements": band_movement_svg(self.scoring),
                "movers": top_movers_svg(self.scoring.movers),
            }
        return _TEMPLATES.get_template("run_report.html.j2").render(
            report=self, charts=charts, colors=band_colors(self.scoring.bands if self.scoring else []), fmt=_fmt
        )


_TEMPLATES = Environment(
    loader=PackageLoader("agent", "templates"),
    autoescape=select_autoescape(["html", "j2"], default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)


def _fmt(value: float | int | None, digits: int = 0) -> str:
    if value is None:
        return "-"
    return f"{value:,.{digits}f}"


# --- charts ------------------------------------------------------------------------------------------

_PALETTE = ("#c0392b", "#e67e22", "#f1c40f", "#27ae60", "#16a085", "#2980b9")


def band_colors(bands: list[str]) -> dict[str, str]:
    """A colour per band, riskiest red through healthiest green/blue."""
    if not bands:
        return {}
    if len(bands) == 3:
        return dict(zip(bands, ("#c0392b", "#f1c40f", "#27ae60"), strict=True))
    return {b: _PALETTE[min(i, len(_PALETTE) - 1)] for i, b in enumerate(bands)}


def _svg(width: int, height: int, body: list[str], label: str) -> Markup:
    # Every interpolated text in ``body`` was escaped where it was built; the rest is numbers.
    return Markup(  # noqa: S704
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{escape(label)}" font-family="sans-serif" font-size="11">' + "".join(body) + "</svg>"
    )


def score_distribution_svg(scoring: ScoringSummary) -> Markup:
    """A histogram of scores in bins of 10 points; each bar coloured by the band its lower edge falls in."""
    width, height, left, bottom, top = 520, 220, 36, 28, 12
    counts = scoring.score_histogram or [0] * HISTOGRAM_BINS
    peak = max(*counts, 1)
    bar_w = (width - left - 10) / len(counts)
    colors = band_colors(scoring.bands)
    body = [f'<line x1="{left}" y1="{height - bottom}" x2="{width - 10}" y2="{height - bottom}" stroke="#444"/>']
    for i, count in enumerate(counts):
        h = (height - bottom - top) * count / peak
        x = left + i * bar_w
        band = _band_at(i * 100 / len(counts), scoring.bands, scoring.band_bounds)
        fill = colors.get(band, "#7f8c8d")
        body.append(
            f'<rect class="bar" x="{x + 2:.1f}" y="{height - bottom - h:.1f}" width="{bar_w - 4:.1f}" '
            f'height="{h:.1f}" fill="{fill}"><title>{i * 10}-{i * 10 + 10}: {count}</title></rect>'
        )
        body.append(f'<text x="{x + bar_w / 2:.1f}" y="{height - bottom + 14}" text-anchor="middle">{i * 10}</text>')
        if count:
            body.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{height - bottom - h - 3:.1f}" text-anchor="middle">{count}</text>'
            )
    return _svg(width, height, body, "Score distribution")


def _band_at(score: float, bands: list[str], bounds: list[float]) -> str:
    band = bands[0] if bands else ""
    for name, edge in zip(bands, bounds, strict=False):
        if score >= edge:
            band = name
    return band


def band_movement_svg(scoring: ScoringSummary) -> Markup:
    """Accounts per band before this run and after it, side by side (only "now" on a first run)."""
    width, height, left, bottom, top = 520, 200, 36, 40, 12
    bands = scoring.bands
    colors = band_colors(bands)
    peak = max([*scoring.band_counts.values(), *scoring.previous_band_counts.values(), 1])
    group_w = (width - left - 10) / max(len(bands), 1)
    series = [("now", scoring.band_counts, 1.0)]
    if scoring.previous_band_counts:
        series.insert(0, ("before", scoring.previous_band_counts, 0.45))
    body = [f'<line x1="{left}" y1="{height - bottom}" x2="{width - 10}" y2="{height - bottom}" stroke="#444"/>']
    for i, band in enumerate(bands):
        x0 = left + i * group_w
        for j, (label, counts, opacity) in enumerate(series):
            count = counts.get(band, 0)
            h = (height - bottom - top) * count / peak
            x = x0 + 8 + j * (group_w - 16) / len(series)
            w = (group_w - 16) / len(series) - 4
            body.append(
                f'<rect class="bar" x="{x:.1f}" y="{height - bottom - h:.1f}" width="{w:.1f}" height="{h:.1f}" '
                f'fill="{colors.get(band, "#7f8c8d")}" fill-opacity="{opacity}"><title>{escape(band)} {label}: '
                f"{count}</title></rect>"
            )
            body.append(
                f'<text x="{x + w / 2:.1f}" y="{height - bottom - h - 3:.1f}" text-anchor="middle">{count}</text>'
            )
            body.append(f'<text x="{x + w / 2:.1f}" y="{height - bottom + 13}" text-anchor="middle">{label}</text>')
        body.append(
            f'<text x="{x0 + group_w / 2:.1f}" y="{height - bottom + 28}" text-anchor="middle" '
            f'font-weight="bold">{escape(band)}</text>'
        )
    return _svg(width, height, body, "Band movements")


def top_movers_svg(movers: list[Mover]) -> Markup:
    """Score changes of the biggest movers as bars left (down) or right (up) of zero."""
    row_h, width, label_w = 22, 520, 200
    height = max(len(movers), 1) * row_h + 10
    span = max([abs(m.delta) for m in movers] + [1.0])
    mid = label_w + (width - label_w) / 2
    half = (width - label_w) / 2 - 40
    body = [f'<line x1="{mid}" y1="0" x2="{mid}" y2="{height}" stroke="#444"/>']
    for i, m in enumerate(movers):
        y = 5 + i * row_h
        w = half * abs(m.delta) / span
        x = mid if m.delta >= 0 else mid - w
        fill = "#27ae60" if m.delta >= 0 else "#c0392b"
        name = escape((m.name or m.external_id)[:28])
        body.append(f'<text x="{label_w - 6}" y="{y + 14}" text-anchor="end">{name}</text>')
        body.append(
            f'<rect class="bar" x="{x:.1f}" y="{y + 3}" width="{max(w, 1):.1f}" height="{row_h - 8}" fill="{fill}">'
            f"<title>{name}: {m.previous_band} to {m.band}</title></rect>"
        )
        tx = x + w + 4 if m.delta >= 0 else x - 4
        anchor = "start" if m.delta >= 0 else "end"
        body.append(f'<text x="{tx:.1f}" y="{y + 14}" text-anchor="{anchor}">{m.delta:+.1f}</text>')
    if not movers:
        body.append(f'<text x="{mid}" y="18" text-anchor="middle">no earlier run to compare with</text>')
    return _svg(width, height, body, "Top movers")


# --- building the scoring summary from the store ----------------------------------------------------------


def summarize_scores(
    engine: Engine, run_id: str, bands: Sequence[tuple[str, float]], *, top: int = 10
) -> ScoringSummary:
    """The scoring part of a run's report, from this run's ``score_history`` rows and the previous run's.

    ``bands``: (name, min_score in points) riskiest first; ``top``: how many movers and at-risk accounts to keep.
    """
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                ScoreHistory.account_id,
                ScoreHistory.score,
                ScoreHistory.band,
                ScoreHistory.flags,
                ScoreHistory.drivers,
                ScoreHistory.low_confidence,
                Account.name,
                Account.source,
                Account.external_id,
            )
            .join(Account, Account.id == ScoreHistory.account_id)
            .where(ScoreHistory.run_id == run_id)
        ).all()
        started = conn.execute(select(Run.started_at).where(Run.id == run_id)).scalar()
        previous_run = None
        if started is not None:
            previous_run = conn.execute(
                select(Run.id)
                # EXISTS seeks ix_score_history_run_id per run, latest first; a DISTINCT over every history row
                # read the whole index, which grows by one row per account per run.
                .where(Run.id != run_id, Run.started_at < started,
                       exists().where(ScoreHistory.run_id == Run.id))
                .order_by(Run.started_at.desc())
                .limit(1)
            ).scalar()
        previous: dict[int, tuple[float, str]] = {}
        if previous_run is not None:
            previous = {
                r.account_id: (r.score, r.band)
                for r in conn.execute(
                    select(ScoreHistory.account_id, ScoreHistory.score, ScoreHistory.band).where(
                        ScoreHistory.run_id == previous_run
                    )
                )
            }
    names = [name for name, _ in bands]
    rank = {b: i for i, b in enumerate(names)}
    summary = ScoringSummary(accounts=len(rows), bands=names, band_bounds=[float(edge) for _, edge in bands])
    summary.band_counts = dict.fromkeys(names, 0)
    flag_counts: Counter[str] = Counter(dict.fromkeys(FLAG_NAMES, 0))
    movements: dict[str, Counter[str]] = {}
    movers: list[Mover] = []
    histogram = [0] * HISTOGRAM_BINS
    for r in rows:
        summary.band_counts[r.band] = summary.band_counts.get(r.band, 0) + 1
        histogram[min(int(r.score // (100 / HISTOGRAM_BINS)), HISTOGRAM_BINS - 1)] += 1
        summary.low_confidence += bool(r.low_confidence)
        for name in _flags_on(r.flags):
            flag_counts[name] += 1
        if r.account_id in previous:
            before_score, before_band = previous[r.account_id]
            movements.setdefault(before_band, Counter())[r.band] += 1
            if not math.isclose(before_score, r.score):
                movers.append(
                    Mover(
                        account_id=r.account_id, name=r.name, crm=r.source, external_id=r.external_id,
                        previous_score=round(before_score, 1), score=round(r.score, 1),
                        previous_band=before_band, band=r.band,
                    )
                )
    summary.score_histogram = histogram
    summary.flag_counts = dict(flag_counts)
    summary.previous_band_counts = dict(Counter(band for _, band in previous.values())) if previous else {}
    summary.band_movements = {k: dict(v) for k, v in movements.items()}
    movers.sort(key=lambda m: (-abs(m.score - m.previous_score), m.account_id))
    summary.movers = movers[:top]
    riskiest = sorted(rows, key=lambda r: (rank.get(r.band, len(rank)), r.score, r.account_id))[:top]
    summary.at_risk = [
        AtRisk(
            account_id=r.account_id, name=r.name, crm=r.source, external_id=r.external_id, score=round(r.score, 1),
            band=r.band, drivers=r.drivers or "", low_confidence=bool(r.low_confidence),
            flags=sorted(_flags_on(r.flags)),
        )
        for r in riskiest
    ]
    return summary


def _flags_on(flags: dict[str, Any] | None) -> list[str]:
    """Names of the flags that are on; a flag is stored as a bool or as ``{"on": bool, "reason": ...}``."""
    return [n for n, f in (flags or {}).items() if (f.get("on") if isinstance(f, dict) else bool(f))]
