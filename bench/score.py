"""Benchmark scoring at scale: 100k accounts, 2M activities, 50k tickets, 30k survey responses in the store.

    .venv/bin/python bench/score.py                       # SQLite (and PostgreSQL when HEALTH_TEST_DATABASE_URL is set)
    .venv/bin/python bench/score.py --pg postgresql+psycopg://postgres@127.0.0.1:5432/test --accounts 20000
    .venv/bin/python bench/score.py --verify              # the DuckDB reference == compute_signals on SQLite

A fast synthetic filler writes the store directly (set-based executemany, not the canonical-record path), so the
fill takes a few minutes rather than the loader's per-record path. Scoring runs in a child process per backend
so its peak RSS is its own; the signal workers it starts with ``--workers N`` (``scoring.partitions``) are reported
beside it: their CPU time, the largest one's peak RSS, and the sum of the peaks as an upper bound of the memory
held at once. The reference is one hand-written DuckDB query computing the same per-account aggregates as
``compute_signals`` (every catalogue signal but the four flags, and each account's champion) over the same rows
(copied from SQLite into DuckDB tables first; only the query is timed; DuckDB uses both cores, as a run's signal
pass does). ``--verify`` checks it equals the engine's frame, account by account and signal by signal, and exits 1
when anything differs. Two ratios are printed: ``signals`` (the same aggregates: what the reference computes) and
``scoring`` (everything a dry run does: signals, scorecards, bands, flags and the 255-character drivers of every
account). ``--repeat N`` keeps the fastest of N runs, since the machine this was written on is shared. Not part of
the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, Table, text
from sqlalchemy import insert as sql_insert

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.config.scoring import FLAG_NAMES, ScoringConfig  # noqa: E402
from store.db import make_engine  # noqa: E402
from store.migrate import upgrade  # noqa: E402
from store.models import SYNCED_MODELS, AccountLink, ActivityParticipant, epoch_us  # noqa: E402

AS_OF = datetime(2026, 6, 1, tzinfo=UTC)
CHUNK = 20_000
SENIORITY = np.array(["c_level", "vp", "director", "manager", "individual", "unknown"])
DEPARTMENTS = np.array(["executive", "engineering", "finance", "sales", "operations", "support"])
TIERS = np.array(["enterprise", "mid_market", "smb"])
TYPES = np.array(["email", "email", "email", "call", "meeting", "note"])
TOPICS = np.array(["expansion", "upgrade", "competitor alternatives", "remote work"])


def _table(name: str) -> Table:
    return SYNCED_MODELS[name].__table__  # type: ignore[attr-defined, no-any-return]


def _chunks(n: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n, CHUNK):
        yield start, min(n, start + CHUNK)


def _ts(base: datetime, seconds: np.ndarray) -> list[datetime]:
    return [base - timedelta(seconds=float(s)) for s in seconds]


class _Buffer:
    """Rows collected and written CHUNK at a time; ``flush`` writes the rest."""

    def __init__(self, write: Callable[[list[dict[str, Any]]], None]) -> None:
        self.write = write
        self.rows: list[dict[str, Any]] = []

    def add(self, row: dict[str, Any]) -> None:
        self.rows.append(row)
        if len(self.rows) >= CHUNK:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            self.write(self.rows)
            self.rows = []


def fill(engine: Engine, accounts: int, activities: int, tickets: int, surveys: int, seed: int = 7) -> dict[str, int]:
    """Write a synthetic book straight into the store's tables; returns rows per table."""
    rng = np.random.default_rng(seed)
    now = datetime.now(UTC)
    counts: dict[str, int] = {}
    common = {"source": "salesforce", "synced_at": now, "is_deleted": False, "extra": {}}
    contacts_per = 5
    n_contacts = accounts * contacts_per
    health = rng.beta(4, 2, accounts)  # a hidden health per account drives every signal a little

    def insert(table: Table, rows: list[dict[str, Any]]) -> None:
        with engine.begin() as conn:
            conn.execute(sql_insert(table), rows)
        counts[table.name] = counts.get(table.name, 0) + len(rows)

    arr = np.round(np.exp(rng.normal(10.5, 1.0, accounts)), -2)
    tier = np.where(arr > 150_000, 0, np.where(arr > 40_000, 1, 2))
    for a, b in _chunks(accounts):
        insert(_table("accounts"), [
            {**common, "id": i + 1, "external_id": f"A{i + 1}", "name": f"Company {i + 1}", "domain": f"co{i + 1}.com",
             "extra_domains": [], "tier": str(TIERS[tier[i]]), "arr": float(arr[i]),
             "source_created_at": AS_OF - timedelta(days=400 + i % 900), "renewal_date": date(2026, 7, 1)
             + timedelta(days=i % 360)}
            for i in range(a, b)
        ])
    sen = rng.integers(0, len(SENIORITY), n_contacts)
    dep = rng.integers(0, len(DEPARTMENTS), n_contacts)
    left = rng.random(n_contacts) < 0.03
    for a, b in _chunks(n_contacts):
        insert(_table("contacts"), [
            {**common, "id": i + 1, "external_id": f"C{i + 1}", "account_external_id": f"A{i // contacts_per + 1}",
             "email": f"p{i + 1}@co{i // contacts_per + 1}.com", "first_name": "P", "last_name": str(i + 1),
             "seniority": str(SENIORITY[sen[i]]), "department": str(DEPARTMENTS[dep[i]]), "has_left": bool(left[i])}
            for i in range(a, b)
        ])
    # Activities: healthier accounts get more, and more recent, two-way touches.
    weight = 0.3 + health
    acct = rng.choice(accounts, size=activities, p=weight / weight.sum())
    kind = TYPES[rng.integers(0, len(TYPES), activities)]
    age = rng.exponential(60 + 200 * (1 - health[acct])) * 86400
    age = np.minimum(age, 540 * 86400) + 60
    inbound = rng.random(activities) < health[acct] * 0.6
    contact = acct * contacts_per + rng.integers(0, contacts_per, activities)
    for a, b in _chunks(activities):
        when = _ts(AS_OF, age[a:b])
        when_us = [epoch_us(w) for w in when]  # written beside occurred_at, as store.upsert writes it
        rows, parts = [], []
        for k, i in enumerate(range(a, b)):
            t = str(kind[i])
            direction = "two_way" if t == "meeting" else (None if t == "note" else
                                                          ("inbound" if inbound[i] else "outbound"))
            rows.append({**common, "id": i + 1, "external_id": f"X{i + 1}", "activity_type": t,
                         "direction": direction, "occurred_at": when[k], "occurred_us": when_us[k],
                         "account_external_id": f"A{acct[i] + 1}"})
            if t != "note":  # participants carry a copy of their activity's fields, as the store keeps them
                parts.append({"source": "salesforce", "activity_external_id": f"X{i + 1}",
                              "contact_external_id": f"C{contact[i] + 1}", "account_external_id": f"A{acct[i] + 1}",
                              "occurred_at": when[k], "occurred_us": when_us[k], "activity_type": t,
                              "direction": direction,
                              "is_deleted": False})
        insert(_table("activities"), rows)
        with engine.begin() as conn:
            conn.execute(sql_insert(ActivityParticipant), parts)
        counts["activity_participants"] = counts.get("activity_participants", 0) + len(parts)
    t_acct = rng.choice(accounts, size=tickets, p=(1.3 - health) / (1.3 - health).sum())
    t_age = rng.uniform(0, 365, tickets) * 86400
    t_hours = rng.exponential(24 + 200 * (1 - health[t_acct]))
    prio = rng.choice(np.array(["p1", "p2", "p3", "p4"]), size=tickets, p=[0.1, 0.2, 0.4, 0.3])
    for a, b in _chunks(tickets):
        opened = _ts(AS_OF, t_age[a:b])
        insert(_table("tickets"), [
            {**common, "id": i + 1, "external_id": f"T{i + 1}", "account_external_id": f"A{t_acct[i] + 1}",
             "priority": str(prio[i]), "status": "closed" if t_hours[i] * 3600 < t_age[i] else "open",
             "is_closed": bool(t_hours[i] * 3600 < t_age[i]), "is_escalated": bool(rng.random() < 0.05),
             "opened_at": opened[k],
             "closed_at": opened[k] + timedelta(hours=float(t_hours[i])) if t_hours[i] * 3600 < t_age[i] else None}
            for k, i in enumerate(range(a, b))
        ])
    links = _Buffer(lambda rows: insert(AccountLink.__table__, rows))  # type: ignore[arg-type]

    def link(entity: str, record_id: int, account_index: int) -> None:
        links.add({"entity": entity, "record_id": record_id, "account_id": account_index + 1, "method": "bench"})

    s_acct = rng.integers(0, accounts, surveys)
    nps = np.clip(np.round(rng.normal(2 + 8 * health[s_acct], 1.5)), 0, 10)
    s_age = rng.uniform(0, 365, surveys) * 86400
    for a, b in _chunks(surveys):
        when = _ts(AS_OF, s_age[a:b])
        insert(_table("survey_responses"), [
            {**common, "source": "nps", "id": i + 1, "external_id": f"S{i + 1}", "kind": "nps",
             "score": float(nps[i]), "responded_at": when[k], "email": f"p{s_acct[i] * contacts_per + 1}@x.com"}
            for k, i in enumerate(range(a, b))
        ])
        for i in range(a, b):
            link("survey_responses", i + 1, int(s_acct[i]))
    months = [date(2026, m, 1) for m in (1, 2, 3, 4, 5)]
    usage_id = 0
    usage_rows = _Buffer(lambda rows: insert(_table("usage_metrics"), rows))
    for i in range(accounts):
        seats = 10 + (i % 90)
        for m, month in enumerate(months):
            usage_id += 1
            active = int(seats * min(1.0, max(0.0, health[i] + 0.05 * (m - 2) * (health[i] - 0.5))))
            usage_rows.add({**common, "source": "usage", "id": usage_id, "external_id": f"U{usage_id}",
                         "account_external_id": f"A{i + 1}", "period_start": month, "active_users": active,
                         "licensed_seats": seats, "feature_adoption": float(round(health[i] * 0.9, 3))})
            link("usage_metrics", usage_id, i)
    usage_rows.flush()
    inv_id = 0
    invoice_rows = _Buffer(lambda rows: insert(_table("invoices"), rows))
    for i in range(accounts):
        for k in range(2):
            inv_id += 1
            issued = date(2026, 1 + 2 * k, 15)
            late = health[i] < 0.35 and k == 1
            invoice_rows.add({**common, "source": "billing", "id": inv_id, "external_id": f"I{inv_id}",
                         "account_external_id": f"A{i + 1}", "amount": float(arr[i] / 2), "issued_at": issued,
                         "due_date": issued + timedelta(days=30), "paid_at": None if late else issued
                         + timedelta(days=20), "status": "open" if late else "paid",
                         "failed_payments": 1 if late else 0})
            link("invoices", inv_id, i)
    invoice_rows.flush()
    n_intent = accounts // 2
    i_acct = rng.integers(0, accounts, n_intent)
    i_topic = TOPICS[rng.integers(0, len(TOPICS), n_intent)]
    for a, b in _chunks(n_intent):
        when = _ts(AS_OF, rng.uniform(0, 90, b - a) * 86400)
        insert(_table("intent_signals"), [
            {**common, "source": "intent", "id": i + 1, "external_id": f"N{i + 1}", "domain": f"co{i_acct[i] + 1}.com",
             "topic": str(i_topic[i]), "score": float(round(100 * health[i_acct[i]], 1)), "observed_at": when[k]}
            for k, i in enumerate(range(a, b))
        ])
        for i in range(a, b):
            link("intent_signals", i + 1, int(i_acct[i]))
    links.flush()
    if engine.dialect.name == "postgresql":
        # A store in steady state has been vacuumed by autovacuum: the visibility map lets covering indexes
        # answer without visiting the table (1.6M heap fetches otherwise, right after a bulk load).
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    else:
        with engine.begin() as conn:
            conn.execute(text("ANALYZE"))
    return counts


def score_child(url: str, persist: bool, workers: int = 1) -> dict[str, Any]:
    """Run in a child process: score every account; report wall time and peak RSS (its own and its workers').

    Without ``persist`` the signal pass is also timed alone first (what the DuckDB reference computes).
    """
    from scoring.engine import score_accounts
    from scoring.signals import compute_signals

    engine = make_engine(url)
    config = ScoringConfig()
    out: dict[str, Any] = {"persist": persist}
    if not persist:
        started = time.perf_counter()
        with engine.connect() as conn:
            frame = compute_signals(conn, config, AS_OF, parallel=True, workers=workers)  # as a run computes them
        out["signals_seconds"] = round(time.perf_counter() - started, 2)
        del frame
    started = time.perf_counter()
    result = score_accounts(engine, config, run_id=str(uuid.uuid4()), as_of=AS_OF, persist=persist, workers=workers)
    out["seconds"] = round(time.perf_counter() - started, 2)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)  # the signal worker processes (scoring.partitions)
    out["workers"] = worker_count_for(engine, workers)
    out["cpu_seconds_process"] = round(usage.ru_utime + usage.ru_stime, 1)  # both passes; less load-sensitive
    out["cpu_seconds_workers"] = round(children.ru_utime + children.ru_stime, 1)
    out["peak_rss_mb"] = round(usage.ru_maxrss / 1024, 1)  # KiB -> MiB
    out["worker_peak_rss_mb"] = round(children.ru_maxrss / 1024, 1)  # the largest worker
    # Upper bound of the memory the run held at once: this process's peak plus each other worker's peak.
    out["peak_rss_mb_all_processes"] = round((usage.ru_maxrss + (out["workers"] - 1) * children.ru_maxrss) / 1024, 1)
    out["load_average"] = os.getloadavg()[0]
    out["accounts"] = len(result.accounts)
    out["bands"] = result.band_counts
    return out


def worker_count_for(engine: Engine, workers: int) -> int:
    from scoring.partitions import worker_count

    with engine.connect() as conn:
        return worker_count(conn, workers, subset=False)


def _run_child(url: str, persist: bool, workers: int) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", url, "--workers", str(workers)] + (["--persist"] if persist else []),
        check=True, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


# One hand-written DuckDB query: the aggregates ``scoring.signals.compute_signals`` computes, with its windows and
# semantics (every catalogue signal but the four flags, plus ``days_since_touch`` and ``touches_period``, and each
# account's champion). Every setting is a bound parameter (``reference_query``). ``verify_reference`` (``--verify``)
# checks it equals the engine's frame.
DUCKDB_QUERY = """
WITH acc AS (  -- the accounts that existed at as_of
  SELECT id, source, external_id, arr, renewal_date, source_created_at FROM accounts
  WHERE (source_created_at IS NULL OR source_created_at < $as_of) AND NOT is_deleted),
engagement AS (
  SELECT source, account_external_id,
    max(occurred_at) FILTER (WHERE touch AND direction IN ('two_way', 'inbound')) AS last_two_way_touch,
    max(occurred_at) FILTER (WHERE touch) AS last_touch,
    count(*) FILTER (WHERE touch AND occurred_at >= $as_of - INTERVAL 90 DAY) AS touches_90d,
    count(*) FILTER (WHERE activity_type = 'meeting' AND occurred_at >= $as_of - INTERVAL 90 DAY) AS meetings_90d,
    count(*) FILTER (WHERE touch AND occurred_at >= $touch_period_start) AS touches_period
  FROM (SELECT *, activity_type IN ('email', 'call', 'meeting') AS touch FROM activities)
  WHERE occurred_at < $as_of AND NOT is_deleted
  GROUP BY source, account_external_id),
per_contact AS (  -- participants alone: each row carries its activity's account, time, type, direction, deletion
  SELECT source, account_external_id, contact_external_id, count(*) AS touches, max(occurred_at) AS last_touch,
    count(*) FILTER (WHERE activity_type = 'meeting') AS meetings,
    count(*) FILTER (WHERE activity_type = 'call') AS calls,
    count(*) FILTER (WHERE activity_type = 'email' AND direction IN ('inbound', 'two_way')) AS two_way_emails,
    count(*) FILTER (WHERE activity_type = 'email' AND (direction IS NULL OR direction NOT IN ('inbound', 'two_way')))
      AS one_way_emails,
    count(*) FILTER (WHERE occurred_at >= $engaged_start) AS engaged_touches,
    count(*) FILTER (WHERE activity_type = 'meeting' AND occurred_at >= $as_of - INTERVAL 180 DAY) AS meetings_180d,
    count(DISTINCT (date_diff('microsecond', occurred_at, $as_of) * $buckets - 1) // $window_us) AS active_buckets
  FROM activity_participants
  WHERE occurred_at < $as_of AND occurred_at >= $window_start AND NOT is_deleted
    AND activity_type IN ('email', 'call', 'meeting')
  GROUP BY source, account_external_id, contact_external_id),
seniority(name, weight) AS (VALUES ('c_level', $c_level), ('vp', $vp), ('director', $director),
  ('manager', $manager), ('individual', $individual), ('unknown', $unknown)),
contact AS (  -- a level outside the list is 'unknown'; a contact is gone when deleted or left as known at as_of
  SELECT a.id AS account_id, c.id AS contact_id, pc.touches, pc.engaged_touches, pc.meetings_180d,
    pc.touches - pc.engaged_touches AS prior_touches,
    date_diff('microsecond', pc.last_touch, $as_of) / 86400e6 AS days_since,
    coalesce(coalesce(c.source_updated_at, c.deleted_at) < $as_of, true) AS changed_before,
    CASE WHEN c.is_deleted AND changed_before THEN 'deleted' WHEN c.has_left AND changed_before THEN 'left' END AS gone,
    pc.engaged_touches > 0 AND gone IS NULL AS engaged,
    coalesce(s.name, 'unknown') AS level, level IN ('c_level', 'vp') AS is_exec,
    lower(nullif(c.department, '')) AS department,
    coalesce(s.weight, $unknown) * (
      $recency_weight * pow(0.5, greatest(days_since, 0) / $recency_half_life_days)
      + $frequency_weight * (1 - exp(-pc.touches / $frequency_scale))
      + $regularity_weight * least(1.0, pc.active_buckets / $regularity_buckets)
      + $intimacy_weight * (1 - exp(-(pc.meetings * $meeting + pc.calls * $call + pc.two_way_emails * $two_way_email
                                      + pc.one_way_emails * $one_way_email) / $intimacy_scale))
    ) / $component_total AS strength
  FROM per_contact pc
  JOIN contacts c ON c.source = pc.source AND c.external_id = pc.contact_external_id
  JOIN acc a ON a.source = pc.source AND a.external_id = pc.account_external_id
  LEFT JOIN seniority s ON s.name = c.seniority),
relationship AS (  -- the champion: most touches before the engaged window (ties: lowest contact id), at least N
  SELECT account_id,
    sum(strength) FILTER (WHERE gone IS NULL) AS strength_sum,
    count(*) FILTER (WHERE engaged) AS thread_count,
    count(DISTINCT level) FILTER (WHERE engaged) AS seniority_levels_engaged,
    count(DISTINCT department) FILTER (WHERE engaged) AS departments_engaged,
    count(*) FILTER (WHERE engaged AND is_exec) > 0 AS exec_sponsor_engaged,
    count(*) FILTER (WHERE is_exec AND meetings_180d > 0) > 0 AS exec_meeting_180d,
    min(days_since) FILTER (WHERE is_exec) AS days_since_exec_touch,
    arg_min(struct_pack(contact_id := contact_id, prior_touches := prior_touches,
                        gone := coalesce(gone, CASE WHEN engaged_touches = 0 THEN 'stopped engaging' END)),
            (-prior_touches, contact_id)) FILTER (WHERE prior_touches >= $min_prior_touches) AS champion
  FROM contact GROUP BY account_id),
support AS (
  SELECT source, account_external_id,
    count(*) FILTER (WHERE opened_at >= $as_of - INTERVAL 30 DAY) AS tickets_30d,
    count(*) FILTER (WHERE opened_at >= $as_of - INTERVAL 90 DAY) AS tickets_90d,
    count(*) FILTER (WHERE priority IN ('p1', 'p2') AND (closed_at >= $as_of OR (closed_at IS NULL AND NOT is_closed)))
      AS open_high_priority_tickets,
    count(*) FILTER (WHERE is_escalated AND opened_at >= $as_of - INTERVAL 90 DAY) AS escalations_90d,
    median(date_diff('microsecond', opened_at, closed_at) / 3600e6)
      FILTER (WHERE closed_at < $as_of AND closed_at >= $as_of - INTERVAL 180 DAY) AS median_resolution_hours
  FROM tickets WHERE opened_at < $as_of AND NOT is_deleted
  GROUP BY source, account_external_id),
feedback AS (
  SELECT l.account_id,
    count(*) FILTER (WHERE s.kind = 'nps' AND s.responded_at >= $as_of - INTERVAL 180 DAY) AS nps_n,
    count(*) FILTER (WHERE s.kind = 'nps' AND s.responded_at >= $as_of - INTERVAL 180 DAY AND s.score >= 9)
      AS promoters,
    count(*) FILTER (WHERE s.kind = 'nps' AND s.responded_at >= $as_of - INTERVAL 180 DAY AND s.score <= 6)
      AS detractors,
    avg(s.score) FILTER (WHERE s.kind = 'csat' AND s.responded_at >= $as_of - INTERVAL 180 DAY) AS csat_avg_180d,
    count(*) FILTER (WHERE s.kind = 'nps' AND s.responded_at >= $as_of - INTERVAL 90 DAY AND s.score <= 6)
      AS detractors_90d,
    count(*) FILTER (WHERE s.kind = 'nps') AS nps_ever,
    arg_max(s.score, (s.responded_at, s.id)) FILTER (WHERE s.kind = 'nps') AS nps_latest
  FROM survey_responses s JOIN account_links l ON l.entity = 'survey_responses' AND l.record_id = s.id
  WHERE s.responded_at < $as_of AND NOT s.is_deleted
  GROUP BY l.account_id),
months AS (SELECT CAST(date_trunc('month', $as_day) AS DATE) AS this_month,
  CAST(this_month - INTERVAL 1 MONTH AS DATE) AS last_month,
  CAST(this_month - INTERVAL 4 MONTH AS DATE) AS first_month),
usage AS (  -- complete calendar months: the last one against the three before
  SELECT l.account_id,
    max(u.active_users) FILTER (WHERE u.period_start = m.last_month) AS active_users,
    max(u.licensed_seats) FILTER (WHERE u.period_start = m.last_month) AS licensed_seats,
    max(u.feature_adoption) FILTER (WHERE u.period_start = m.last_month) AS feature_adoption,
    avg(u.active_users) FILTER (WHERE u.period_start < m.last_month) AS prior_users
  FROM usage_metrics u JOIN account_links l ON l.entity = 'usage_metrics' AND l.record_id = u.id CROSS JOIN months m
  WHERE u.period_start < m.this_month AND u.period_start >= m.first_month AND NOT u.is_deleted
  GROUP BY l.account_id),
billing AS (
  SELECT l.account_id,
    date_diff('day', min(i.due_date) FILTER (WHERE unpaid), $as_day) AS days_overdue,
    sum(i.amount) FILTER (WHERE unpaid) AS overdue_amount,
    sum(i.failed_payments) FILTER (WHERE i.issued_at >= $as_day - INTERVAL 180 DAY) AS failed_payments_180d
  FROM (SELECT *, status <> 'void' AND (paid_at IS NULL OR paid_at >= $as_day) AND due_date < $as_day AS unpaid
        FROM invoices) i
  JOIN account_links l ON l.entity = 'invoices' AND l.record_id = i.id
  WHERE i.issued_at < $as_day AND NOT i.is_deleted
  GROUP BY l.account_id),
intent AS (
  SELECT l.account_id,
    max(n.score) FILTER (WHERE list_contains($expansion_topics, lower(n.topic))) AS intent_expansion,
    max(n.score) FILTER (WHERE list_contains($risk_topics, lower(n.topic))) AS intent_risk
  FROM intent_signals n JOIN account_links l ON l.entity = 'intent_signals' AND l.record_id = n.id
  WHERE n.observed_at < $as_of AND n.observed_at >= $intent_start AND NOT n.is_deleted
  GROUP BY l.account_id),
renewal AS (
  SELECT source, account_external_id, min(close_date) AS next_renewal FROM deals
  WHERE kind = 'renewal' AND close_date >= $as_day AND (source_created_at IS NULL OR source_created_at < $as_of)
    AND NOT is_deleted
  GROUP BY source, account_external_id)
SELECT acc.id,
  CASE WHEN u.licensed_seats <> 0 THEN u.active_users / u.licensed_seats END AS seat_utilization,
  CASE WHEN u.prior_users <> 0 THEN u.active_users / u.prior_users - 1 END AS usage_trend,
  u.feature_adoption,
  CASE WHEN b.account_id IS NOT NULL THEN coalesce(b.days_overdue, 0) END AS days_overdue,
  CASE WHEN b.account_id IS NOT NULL AND acc.arr <> 0 THEN coalesce(b.overdue_amount, 0) / acc.arr END
    AS overdue_share_of_arr,
  CASE WHEN b.account_id IS NOT NULL THEN coalesce(b.failed_payments_180d, 0) END AS failed_payments_180d,
  coalesce(t.tickets_30d, 0) AS tickets_30d, coalesce(t.tickets_90d, 0) AS tickets_90d,
  coalesce(t.open_high_priority_tickets, 0) AS open_high_priority_tickets,
  coalesce(t.escalations_90d, 0) AS escalations_90d, t.median_resolution_hours,
  f.nps_latest, CASE WHEN f.nps_n > 0 THEN 100.0 * (f.promoters - f.detractors) / f.nps_n END AS nps_180d,
  f.csat_avg_180d, CASE WHEN f.nps_ever > 0 THEN (f.detractors_90d > 0)::INTEGER END AS detractor_90d,
  round(date_diff('microsecond', e.last_two_way_touch, $as_of) / 86400e6, 6) AS days_since_two_way_touch,
  round(date_diff('microsecond', e.last_touch, $as_of) / 86400e6, 6) AS days_since_touch,
  coalesce(e.touches_90d, 0) AS touches_90d, coalesce(e.meetings_90d, 0) AS meetings_90d,
  coalesce(e.touches_period, 0) AS touches_period,
  coalesce(r.exec_meeting_180d, false)::INTEGER AS exec_meeting_180d, r.days_since_exec_touch,
  100 * (1 - exp(-coalesce(r.strength_sum, 0) / $capital_scale)) AS relationship_capital,
  coalesce(r.thread_count, 0) AS thread_count, coalesce(r.seniority_levels_engaged, 0) AS seniority_levels_engaged,
  coalesce(r.departments_engaged, 0) AS departments_engaged,
  coalesce(r.exec_sponsor_engaged, false)::INTEGER AS exec_sponsor_engaged,
  n.intent_expansion, n.intent_risk,
  date_diff('day', $as_day, least(CASE WHEN acc.renewal_date >= $as_day THEN acc.renewal_date END, d.next_renewal))
    AS days_to_renewal,
  CASE WHEN acc.source_created_at IS NOT NULL
    THEN greatest(0, date_diff('microsecond', acc.source_created_at, $as_of) / 86400e6) END AS tenure_days,
  acc.arr,
  r.champion.contact_id AS champion_contact_id, r.champion.prior_touches AS champion_prior_touches,
  r.champion.gone AS champion_gone_why
FROM acc
LEFT JOIN engagement e ON e.source = acc.source AND e.account_external_id = acc.external_id
LEFT JOIN relationship r ON r.account_id = acc.id
LEFT JOIN support t ON t.source = acc.source AND t.account_external_id = acc.external_id
LEFT JOIN feedback f ON f.account_id = acc.id
LEFT JOIN usage u ON u.account_id = acc.id
LEFT JOIN billing b ON b.account_id = acc.id
LEFT JOIN intent n ON n.account_id = acc.id
LEFT JOIN renewal d ON d.source = acc.source AND d.account_external_id = acc.external_id
"""
CHAMPION_COLUMNS = ("champion_contact_id", "champion_prior_touches", "champion_gone_why")


def reference_query(config: ScoringConfig, as_of: datetime = AS_OF) -> tuple[str, dict[str, Any]]:
    """``DUCKDB_QUERY`` for this configuration and its parameters (naive UTC times, as the store keeps them).

    The regularity period of a touch is computed in whole microseconds, as compute_signals computes it: period k
    holds the touches more than k and at most k + 1 period lengths before as_of.
    """
    rc = config.relationship
    naive = as_of.astimezone(UTC).replace(tzinfo=None)

    def ago(days: float) -> datetime:
        return naive - timedelta(days=days)

    components = rc.components
    params: dict[str, Any] = {
        "as_of": naive, "as_day": naive.date(),
        "touch_period_start": ago(config.flags.lonely_client.period_days),
        "window_start": ago(rc.window_days), "engaged_start": ago(rc.engaged_days),
        "buckets": rc.regularity_buckets, "window_us": rc.window_days * 86_400_000_000,
        **rc.seniority.model_dump(), **rc.intimacy.model_dump(),
        **{f"{name}_weight": weight for name, weight in components.model_dump().items()},
        "component_total": components.recency + components.frequency + components.regularity + components.intimacy,
        "recency_half_life_days": rc.recency_half_life_days, "frequency_scale": rc.frequency_scale,
        "regularity_buckets": float(rc.regularity_buckets), "intimacy_scale": rc.intimacy_scale,
        "capital_scale": rc.capital_scale, "min_prior_touches": config.flags.champion_gone.min_prior_touches,
        "expansion_topics": config.intent.expansion_topics or [""], "risk_topics": config.intent.risk_topics or [""],
        "intent_start": ago(config.intent.window_days),
    }
    return DUCKDB_QUERY, params


_DUCK_TABLES = {
    "accounts": "id, source, external_id, arr, renewal_date, is_deleted, source_created_at",
    "activities": "source, account_external_id, activity_type, direction, occurred_at, is_deleted",
    "activity_participants": "source, account_external_id, contact_external_id, occurred_at, activity_type, direction, "
                             "is_deleted",
    "contacts": "id, source, external_id, seniority, department, has_left, is_deleted, source_updated_at, deleted_at",
    "deals": "source, account_external_id, kind, close_date, source_created_at, is_deleted",
    "tickets": "source, account_external_id, priority, is_closed, is_escalated, opened_at, closed_at, is_deleted",
    "survey_responses": "id, kind, score, responded_at, is_deleted",
    "usage_metrics": "id, period_start, active_users, licensed_seats, feature_adoption, is_deleted",
    "invoices": "id, amount, issued_at, due_date, paid_at, status, failed_payments, is_deleted",
    "intent_signals": "id, topic, score, observed_at, is_deleted",
    "account_links": "entity, record_id, account_id",
}
# Every column's type, so a batch whose column is all NULL (or an empty table) still makes a typed column.
_TYPES = {
    "id": "BIGINT", "record_id": "BIGINT", "account_id": "BIGINT", "active_users": "BIGINT",
    "licensed_seats": "BIGINT", "failed_payments": "BIGINT",
    "arr": "DOUBLE", "score": "DOUBLE", "amount": "DOUBLE", "feature_adoption": "DOUBLE",
    "source": "VARCHAR", "external_id": "VARCHAR", "account_external_id": "VARCHAR", "contact_external_id": "VARCHAR",
    "activity_type": "VARCHAR", "direction": "VARCHAR", "seniority": "VARCHAR", "department": "VARCHAR",
    "kind": "VARCHAR", "priority": "VARCHAR", "status": "VARCHAR", "topic": "VARCHAR", "entity": "VARCHAR",
    "is_deleted": "BOOLEAN", "has_left": "BOOLEAN", "is_closed": "BOOLEAN", "is_escalated": "BOOLEAN",
    "source_created_at": "TIMESTAMP", "source_updated_at": "TIMESTAMP", "deleted_at": "TIMESTAMP",
    "occurred_at": "TIMESTAMP", "opened_at": "TIMESTAMP", "closed_at": "TIMESTAMP", "responded_at": "TIMESTAMP",
    "observed_at": "TIMESTAMP",
    "renewal_date": "DATE", "close_date": "DATE", "period_start": "DATE", "issued_at": "DATE", "due_date": "DATE",
    "paid_at": "DATE",
}


def _duck_copy(sqlite_path: Path) -> Any:
    """A DuckDB database holding a copy of the columns the reference reads from the SQLite store."""
    import duckdb
    import pyarrow as pa

    duck = duckdb.connect()
    src = sqlite3.connect(sqlite_path)
    try:
        for table, cols in _DUCK_TABLES.items():
            names = [c.strip() for c in cols.split(",")]
            duck.execute(f"CREATE TABLE {table} ({', '.join(f'{n} {_TYPES[n]}' for n in names)})")
            select_list = ", ".join(f"CAST({n} AS {_TYPES[n]})" for n in names)
            cur = src.execute(f"SELECT {cols} FROM {table}")
            while rows := cur.fetchmany(200_000):
                duck.register("batch", pa.table({n: [r[i] for r in rows] for i, n in enumerate(names)}))
                duck.execute(f"INSERT INTO {table} SELECT {select_list} FROM batch")
                duck.unregister("batch")
    finally:
        src.close()
    return duck


def duckdb_reference(sqlite_path: Path, repeat: int = 1) -> dict[str, Any]:
    """Copy the tables into DuckDB (untimed), then time one DuckDB query computing the same aggregates."""
    started = time.perf_counter()
    duck = _duck_copy(sqlite_path)
    export_seconds = time.perf_counter() - started
    query, params = reference_query(ScoringConfig())
    timings = []
    for _ in range(repeat):  # the fastest of the repeats, as for scoring
        started = time.perf_counter()
        rows = duck.execute(query, params).fetchall()
        timings.append(time.perf_counter() - started)
    threads = duck.execute("SELECT current_setting('threads')").fetchone()
    return {"rows": len(rows), "query_seconds": round(min(timings), 2), "export_seconds": round(export_seconds, 1),
            "threads": threads[0] if threads else None}


def _contact_names(sqlite_path: Path, ids: list[int]) -> dict[int, str]:
    """Contacts' display names as the engine shows a champion: first and last name, else email, else ``contact <id>``.
    """
    src = sqlite3.connect(sqlite_path)
    try:
        names: dict[int, str] = {}
        for start in range(0, len(ids), 5_000):
            chunk = ids[start : start + 5_000]
            marks = ", ".join("?" * len(chunk))
            for cid, first, last, email in src.execute(
                f"SELECT id, first_name, last_name, email FROM contacts WHERE id IN ({marks})", chunk
            ):
                names[cid] = " ".join(x for x in (first, last) if x) or email or f"contact {cid}"
        return names
    finally:
        src.close()


def verify_reference(sqlite_path: Path, config: ScoringConfig | None = None,
                     rel: float = 1e-6, abs_: float = 1e-6) -> dict[str, Any]:
    """Compare the reference query with ``compute_signals`` on the same SQLite store, per account and signal.

    A value differs when both are numbers further apart than ``abs_`` + ``rel`` x |engine's value|, or when only
    one is missing (NaN). The champion differs when only one side has one, or its name, earlier touches or reason
    for being gone differ. Returns per signal the accounts that differ and the largest difference.
    """
    from scoring.signals import compute_signals

    config = config or ScoringConfig()
    duck = _duck_copy(sqlite_path)
    query, params = reference_query(config)
    result = duck.execute(query, params)
    names = [d[0] for d in result.description]
    rows = result.fetchall()
    columns = {name: [r[j] for r in rows] for j, name in enumerate(names)}
    engine = make_engine(f"sqlite:///{sqlite_path}")
    try:
        with engine.connect() as conn:
            frame = compute_signals(conn, config, AS_OF, parallel=True)  # as a run computes them
    finally:
        engine.dispose()
    frame_ids = [a.id for a in frame.accounts]
    at = {account_id: i for i, account_id in enumerate(columns.get("id", ()))}
    report: dict[str, Any] = {"accounts": len(frame_ids), "reference_accounts": len(at),
                              "missing_accounts": sum(1 for x in frame_ids if x not in at), "signals": {}}
    order = np.array([at.get(x, -1) for x in frame_ids])
    known = order >= 0
    report["extra_accounts"] = len(at) - int(known.sum())
    report["duplicate_accounts"] = len(rows) - len(at)
    for name in names:
        if name == "id" or name in CHAMPION_COLUMNS:
            continue
        reference = np.array([np.nan if v is None else float(v) for v in columns[name]])[order[known]]
        engine_values = frame.values.get(name, np.full(len(frame_ids), np.inf))[known]  # inf: not in the frame
        both = ~np.isnan(reference) & ~np.isnan(engine_values)
        gap = np.abs(reference - engine_values)
        close = np.isnan(reference) & np.isnan(engine_values)
        close[both] = gap[both] <= abs_ + rel * np.abs(engine_values[both])
        report["signals"][name] = {
            "differ": int((~close).sum()), "max_diff": float(gap[both].max(initial=0.0)),
            "missing_on_one_side": int((np.isnan(reference) != np.isnan(engine_values)).sum()),
        }
    report["unchecked_signals"] = sorted(set(frame.values) - set(names) - set(FLAG_NAMES))
    champions = [(account_id, cid, prior, why) for account_id, cid, prior, why
                 in zip(*(columns[c] for c in ("id", *CHAMPION_COLUMNS)), strict=True) if cid is not None]
    contact_name = _contact_names(sqlite_path, sorted({cid for _, cid, _, _ in champions}))
    ours = {account_id: (contact_name.get(cid), prior, why) for account_id, cid, prior, why in champions}
    theirs = {frame_ids[pos]: (c.name, c.prior_touches, c.gone) for pos, c in frame.champions.items()}
    champion_differ = sum(ours.get(a) != theirs.get(a) for a in ours.keys() | theirs.keys())
    report["champions"] = {"engine": len(theirs), "reference": len(ours), "differ": champion_differ}
    report["ok"] = (report["missing_accounts"] == report["extra_accounts"] == report["duplicate_accounts"] == 0
                    and champion_differ == 0
                    and not report["unchecked_signals"]
                    and all(s["differ"] == 0 for s in report["signals"].values()))
    return report


def _print_verification(report: dict[str, Any]) -> None:
    print(f"accounts: engine {report['accounts']}, reference {report['reference_accounts']} "
          f"(missing {report['missing_accounts']}, extra {report['extra_accounts']}, "
          f"repeated {report['duplicate_accounts']})")
    print(f"{'signal':<28} {'differ':>7} {'one NaN':>8} {'max diff':>12}")
    for name, s in report["signals"].items():
        print(f"{name:<28} {s['differ']:>7} {s['missing_on_one_side']:>8} {s['max_diff']:>12.3g}")
    c = report["champions"]
    print(f"{'champion':<28} {c['differ']:>7}   (engine {c['engine']}, reference {c['reference']})")
    if report["unchecked_signals"]:
        print(f"not computed by the reference: {', '.join(report['unchecked_signals'])}")
    print("reference == compute_signals" if report["ok"] else "reference DIFFERS from compute_signals")


def _fill_store(url: str, name: str, sizes: dict[str, int], report: dict[str, Any]) -> None:
    engine = make_engine(url)
    upgrade(engine)
    started = time.perf_counter()
    report[f"{name}_fill"] = fill(engine, **sizes)
    report[f"{name}_fill_seconds"] = round(time.perf_counter() - started, 1)
    engine.dispose()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--activities", type=int, default=2_000_000)
    parser.add_argument("--tickets", type=int, default=50_000)
    parser.add_argument("--surveys", type=int, default=30_000)
    parser.add_argument("--sqlite", type=Path, default=Path("data/bench/score-bench.db"))
    parser.add_argument("--pg", default=os.environ.get("HEALTH_TEST_DATABASE_URL"), help="PostgreSQL URL (optional)")
    parser.add_argument("--reuse", action="store_true", help="Reuse an existing filled SQLite file.")
    parser.add_argument("--pg-schema", help="Keep the PostgreSQL store in this schema (filled once, then reused).")
    parser.add_argument("--no-duckdb", action="store_true")
    parser.add_argument("--verify", action="store_true",
                        help="Only check that the DuckDB reference equals compute_signals on the SQLite store (filled "
                             "first if the file does not exist); exit 1 when any signal or champion differs.")
    parser.add_argument("--repeat", type=int, default=1, help="Score N times per backend; report the fastest.")
    parser.add_argument("--no-sqlite", action="store_true", help="Skip scoring on SQLite (PostgreSQL only).")
    parser.add_argument("--workers", type=int, default=1,
                        help="Signal worker processes (HEALTH_AGENT_SCORING_WORKERS); default 1, as a run's default.")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--persist", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(score_child(args.child, args.persist, args.workers)))
        return 0
    sizes = {"accounts": args.accounts, "activities": args.activities, "tickets": args.tickets,
             "surveys": args.surveys}
    report: dict[str, Any] = {"sizes": sizes, "as_of": AS_OF.isoformat()}
    targets: list[tuple[str, str]] = []
    sqlite_url = f"sqlite:///{args.sqlite}"
    if args.verify:
        if not args.sqlite.exists():
            _fill_store(sqlite_url, "sqlite", sizes, report)
        verification = verify_reference(args.sqlite)
        _print_verification(verification)
        return 0 if verification["ok"] else 1
    if not (args.reuse and args.sqlite.exists()):
        args.sqlite.unlink(missing_ok=True)
        _fill_store(sqlite_url, "sqlite", sizes, report)
    else:  # score a reused store as a fresh one: without the history earlier runs persisted
        reused = make_engine(sqlite_url)
        with reused.begin() as conn:
            conn.execute(text("DELETE FROM score_history"))
        reused.dispose()
    if not args.no_sqlite:
        targets.append(("sqlite", sqlite_url))
    keep_schema = bool(args.pg_schema)
    if args.pg:
        schema = args.pg_schema or f"bench_{uuid.uuid4().hex[:8]}"
        admin = make_engine(args.pg)
        with admin.begin() as conn:
            existed = conn.execute(text("SELECT 1 FROM information_schema.schemata WHERE schema_name = :s"),
                                   {"s": schema}).first() is not None
            if not existed:
                conn.execute(text(f'CREATE SCHEMA "{schema}"'))
        sep = "&" if "?" in args.pg else "?"
        pg_url = f"{args.pg}{sep}options=-csearch_path%3D{schema}"
        if existed:  # a kept schema, filled by an earlier run: score it as a fresh store
            reused = make_engine(pg_url)
            with reused.begin() as conn:
                conn.execute(text("DELETE FROM score_history"))
            reused.dispose()
        else:
            _fill_store(pg_url, "postgresql", sizes, report)
        targets.append(("postgresql", pg_url))
    try:
        for name, url in targets:
            runs = [_run_child(url, persist=False, workers=args.workers) for _ in range(args.repeat)]
            report[f"{name}_score"] = min(runs, key=lambda r: r["seconds"])  # the least disturbed run
            report[f"{name}_score"]["all_runs_seconds"] = [r["seconds"] for r in runs]
            # The signal pass is timed on its own in each run: its fastest, as for the reference.
            report[f"{name}_score"]["signals_seconds"] = min(r["signals_seconds"] for r in runs)
            report[f"{name}_score"]["all_runs_signals_seconds"] = [r["signals_seconds"] for r in runs]
            report[f"{name}_score_and_persist"] = _run_child(url, persist=True, workers=args.workers)
            print(json.dumps({name: report[f"{name}_score"]}), flush=True)
        if not args.no_duckdb:
            report["duckdb_reference"] = duckdb_reference(args.sqlite, args.repeat)
            ref = report["duckdb_reference"]["query_seconds"]
            for name, _ in targets:
                score = report[f"{name}_score"]
                report[f"{name}_vs_duckdb"] = {"signals": round(score["signals_seconds"] / max(ref, 1e-9), 2),
                                               "scoring": round(score["seconds"] / max(ref, 1e-9), 2)}
    finally:
        if args.pg:
            if not keep_schema:
                with admin.begin() as conn:
                    conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            admin.dispose()
    print(json.dumps(report, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())

