"""Explain one account's score: every measure (raw value, points, weight, contribution), every flag and why it is
on or off, relationship capital contact by contact, the band (hysteresis, override) and the trend.

The explanation is computed the same way a run scores (``scoring.engine``), over the whole portfolio (percentiles
and lonely-client comparisons are portfolio-relative), keeping per-contact detail for the one account.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from rich.console import Console, Group
from rich.table import Table
from rich.text import Text
from sqlalchemy import Connection, Engine, or_, select

from core.config.scoring import ScoringConfig, fold_case
from core.domains import normalize_domain
from core.errors import ConfigError
from scoring.engine import AccountDetail, load_history, score_frame
from scoring.signals import ACC, ContactDetail, compute_signals, folded
from store.models import AccountDomain, ScoreHistory


@dataclass(frozen=True)
class StoredScore:
    score: float
    band: str
    scored_at: datetime
    drivers: str


@dataclass(frozen=True)
class Explanation:
    detail: AccountDetail
    contacts: list[ContactDetail]
    last_stored: StoredScore | None

    def to_dict(self) -> dict[str, Any]:
        d = self.detail
        s = d.score
        return {
            "account": {"id": s.account_id, "source": s.source, "external_id": s.external_id, "name": s.name,
                        "tier": s.tier, "arr": s.arr},
            "as_of": d.as_of.isoformat(),
            "scorecard": s.scorecard,
            "score": s.score,
            "band": s.band,
            "computed_band": s.computed_band,
            "previous_band": s.previous_band,
            "hysteresis_held": d.hysteresis_held,
            "override": {"band": d.override_band, "note": d.override_note},
            "coverage": s.coverage,
            "low_confidence": s.low_confidence,
            "trend": {"delta": s.trend_delta, "days": d.trend_days, "direction": s.direction,
                      "past_score": d.past_score},
            "drivers": s.drivers,
            "measures": [m.to_dict() for m in d.measures],
            "flags": {n: {"on": f.on, "reason": f.reason} for n, f in d.flags.items()},
            "relationship": {
                "capital": s.relationship_capital,
                "thread_count": s.thread_count,
                "contacts": [_contact_dict(c) for c in self.contacts],
            },
            "signals": d.signals,
            "last_stored": None if self.last_stored is None else {
                "score": self.last_stored.score, "band": self.last_stored.band,
                "scored_at": self.last_stored.scored_at.isoformat(), "drivers": self.last_stored.drivers,
            },
        }

    def render(self) -> Group:
        """A rich rendering: summary, measures, flags, contacts."""
        d = self.detail
        s = d.score
        trend = "no history" if s.trend_delta is None else f"{s.trend_delta:+.1f} over {d.trend_days}d ({s.direction})"
        head = Text.assemble(
            (f"{s.name or s.external_id}", "bold"), f"  [{s.source} {s.external_id}, store id {s.account_id}]\n",
            "score ", (f"{s.score:.1f}", "bold"), f"  band {s.band}", f"  (computed {s.computed_band}",
            ", held by hysteresis" if d.hysteresis_held else "", ")\n",
            f"scorecard {s.scorecard}; coverage {s.coverage:.0%}",
            (" LOW CONFIDENCE" if s.low_confidence else ""), f"; trend {trend}; as of {d.as_of:%Y-%m-%d %H:%M} UTC\n",
            f"override: {d.override_note}\n", f"drivers: {s.drivers}",
        )
        measures = Table(title="Measures", show_lines=False)
        for col in ("measure", "signal", "raw", "points", "weight", "effective", "contribution", "meaning"):
            measures.add_column(col, justify="right" if col in ("raw", "points", "weight", "effective",
                                                                "contribution") else "left")
        for m in d.measures:
            measures.add_row(
                m.label, m.signal, _fmt(m.raw), "skipped" if m.points is None else f"{m.points:.1f}",
                f"{m.weight:.1%}", f"{m.effective_weight:.1%}", f"{m.contribution:.1f}",
                f"{m.text} (policy: {m.policy})" if m.missing else m.text,
            )
        flags = Table(title="Flags")
        flags.add_column("flag")
        flags.add_column("on")
        flags.add_column("why")
        for name, f in d.flags.items():
            flags.add_row(name, "ON" if f.on else "off", f.reason)
        contacts = Table(title=f"Relationship capital {s.relationship_capital or 0:.0f}/100, "
                               f"{s.thread_count or 0} engaged contact(s)")
        for col in ("contact", "seniority", "department", "touches", "last (d)", "recency", "frequency",
                    "regularity", "intimacy", "two-way", "strength", "status"):
            contacts.add_column(col)
        for c in self.contacts:
            p = c.parts
            contacts.add_row(
                c.name, c.seniority, c.department or "", str(c.touches), f"{c.days_since_last:.0f}",
                f"{p.recency:.2f}", f"{p.frequency:.2f}", f"{p.regularity:.2f}", f"{p.intimacy:.2f}",
                f"{p.two_way_ratio:.0%}", f"{p.strength:.2f}", c.gone or ("engaged" if c.engaged else "quiet"),
            )
        parts: list[Any] = [head, measures, flags, contacts]
        if self.last_stored is not None:
            ls = self.last_stored
            parts.append(Text(f"last stored score: {ls.score:.1f} {ls.band} at {ls.scored_at:%Y-%m-%d %H:%M} UTC"))
        return Group(*parts)

    def print(self, console: Console) -> None:
        console.print(self.render())


def _contact_dict(c: ContactDetail) -> dict[str, Any]:
    p = c.parts
    return {
        "contact_id": c.contact_id, "name": c.name, "seniority": c.seniority, "department": c.department,
        "touches": c.touches, "days_since_last": round(c.days_since_last, 1), "engaged": c.engaged, "gone": c.gone,
        "recency": round(p.recency, 3), "frequency": round(p.frequency, 3), "regularity": round(p.regularity, 3),
        "intimacy": round(p.intimacy, 3), "two_way_ratio": round(p.two_way_ratio, 3),
        "seniority_weight": p.seniority_weight, "strength": round(p.strength, 3),
    }


def _fmt(v: float | str | None) -> str:
    if v is None:
        return "-"
    if isinstance(v, str):
        return v
    return f"{v:,.2f}".rstrip("0").rstrip(".") if abs(v) < 1e6 else f"{v:,.0f}"


def resolve_account(conn: Connection, account_ref: str) -> int:
    """A live account's store id from its store id, CRM external id, exact name (any case) or domain."""
    ref = account_ref.strip()
    live = ~ACC.c.is_deleted
    attempts = []
    if ref.isdigit():
        attempts.append(select(ACC.c.id).where(ACC.c.id == int(ref), live))
    attempts.append(select(ACC.c.id).where(ACC.c.external_id == ref, live))
    attempts.append(select(ACC.c.id).where(ACC.c.name == ref, live))
    attempts.append(select(ACC.c.id).where(folded(conn, ACC.c.name) == fold_case(ref), live))
    domain = normalize_domain(ref)
    if domain:
        dt = AccountDomain.__table__
        attempts.append(
            select(ACC.c.id).where(live, or_(ACC.c.domain == domain, ACC.c.id.in_(
                select(dt.c.account_id).where(dt.c.domain == domain))))
        )
    for stmt in attempts:
        ids = sorted({int(i) for i in conn.execute(stmt).scalars()})
        if len(ids) == 1:
            return ids[0]
        if len(ids) > 1:
            raise ConfigError(f"account {account_ref!r} matches {len(ids)} accounts (store ids "
                              f"{', '.join(map(str, ids[:10]))}); use a store id or CRM id")
    raise ConfigError(f"no live account matches {account_ref!r} (try a store id, CRM id, exact name or domain)")


def explain_account(engine: Engine, config: ScoringConfig, account_ref: str,
                    as_of: datetime | None = None) -> Explanation:
    """Score the portfolio as of ``as_of`` (default now, UTC) and explain one account in full."""
    as_of = as_of or datetime.now(UTC)
    sh = ScoreHistory.__table__
    with engine.connect() as conn:
        account_id = resolve_account(conn, account_ref)
        frame = compute_signals(conn, config, as_of, detail_for=[account_id])
        history = load_history(conn, as_of, config.trend_days)
        last = conn.execute(
            select(sh.c.score, sh.c.band, sh.c.scored_at, sh.c.drivers)
            .where(sh.c.account_id == account_id).order_by(sh.c.scored_at.desc(), sh.c.id.desc()).limit(1)
        ).first()
    pos = next((i for i, a in enumerate(frame.accounts) if a.id == account_id), None)
    if pos is None:
        raise ConfigError(f"account {account_ref!r} did not exist yet at {as_of.isoformat()}")
    detail = score_frame(frame, config, history).detail(pos)
    stored = None if last is None else StoredScore(last.score, last.band, last.scored_at, last.drivers)
    return Explanation(detail, frame.contacts.get(pos, []), stored)
