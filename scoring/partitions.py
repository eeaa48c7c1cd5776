"""Signals computed in shares of the portfolio, one process each, so scoring can use more than one CPU.

A share is two stretches of about equal size, each read as one contiguous range of an index:
- for the families keyed by account reference (relationship, engagement, support, contract), a stretch of the
  accounts in the database's own order of ``(source, external id)``: their activity, participant, ticket and
  deal queries read one range of the covering index;
- for the families that reach accounts through account_links (feedback, usage, billing, intent), a stretch of
  account ids: they read one range of the links' account index.
The calling process computes the first share on its own connection while worker processes compute the others
on their own engines; the shares' columns are then put side by side. Portfolio-wide steps (flags relative to
the portfolio, percentiles) run afterwards on the whole frame, so the result is the same as in one process
(tested on SQLite and PostgreSQL).

Opt-in (``HEALTH_AGENT_SCORING_WORKERS``), because it pays only with CPUs to spare. Measured on 2 CPUs with
100k accounts (2026-12-04): on SQLite one process, with the relationship SQL running ahead on a second
connection (the default), computed the signals in 2.6 s against 4.6 s in two shares, whose worker held about
290 MB of its own; on PostgreSQL the server needs the same two CPUs, and one process with the relationship family
on a second connection (the default) was faster too (in an earlier round: 9.6-9.9 s against 11-13 s).

Processes, not threads: with SQLite the work happens inside ``sqlite3_step``, which takes the GIL back for
every row, and turning rows into arrays is Python work on any database. A worker that fails (or a platform
that cannot start one) costs time, not data: its share is computed in the calling process and a warning says
why.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from sqlalchemy import Connection, func, select

from core.config.scoring import ScoringConfig
from core.redaction import redact
from scoring.signals import ACC, AccountRow, Champion, ContactDetail, KeyRange, _Builder, single_connection

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShareJob:
    """What one share computes: the keyed families for ``keyed`` (all inside ``key_range``), the linked families
    for ``linked`` (all inside ``id_range``)."""

    keyed: list[AccountRow]
    key_range: KeyRange
    linked: list[AccountRow]
    id_range: tuple[int, int]


@dataclass
class Share:
    """One share's signal columns: per part, account ids and the columns in their order."""

    parts: list[tuple[list[int], dict[str, np.ndarray]]]
    champions: dict[int, Champion]  # account id -> champion
    contacts: dict[int, list[ContactDetail]]  # account id -> contacts (detail accounts only)
    seconds: float


def worker_count(conn: Connection, requested: int, *, subset: bool) -> int:
    """How many shares to compute: ``requested``, at most one per account; one for an explicit set of accounts
    (explain, backtest) and for an in-memory SQLite store, which no other process can open."""
    if subset or requested <= 1 or single_connection(conn):
        return 1
    accounts = conn.execute(select(func.count()).select_from(ACC)).scalar_one()
    return max(1, min(requested, accounts))


def _worker_url(conn: Connection) -> str:
    """The store's URL for a worker process: with its password (handed over a pipe, never logged) and, for a
    SQLite file, an absolute path (a worker need not share the caller's working directory)."""
    url = conn.engine.url
    if url.get_backend_name() == "sqlite" and url.database:
        url = url.set(database=str(Path(url.database).resolve()))
    return url.render_as_string(hide_password=False)


def plan_shares(b: _Builder, shares: int) -> list[ShareJob]:
    """The frame's accounts cut into ``shares`` stretches of key order and, separately, of id order."""
    stmt = select(ACC.c.id, ACC.c.source, ACC.c.external_id).order_by(ACC.c.source, ACC.c.external_id)
    by_key = [(id_, source, ext) for id_, source, ext in b.conn.execute(stmt) if id_ in b.pos]
    by_id = b.accounts  # load_accounts orders by id
    if not by_id:
        return []
    size = math.ceil(len(by_id) / shares)
    jobs: list[ShareJob] = []
    for start in range(0, len(by_id), size):
        keyed = by_key[start : start + size]
        linked = by_id[start : start + size]
        jobs.append(ShareJob(
            keyed=[b.accounts[b.pos[id_]] for id_, _, _ in keyed],
            key_range=KeyRange((keyed[0][1], keyed[0][2]), (keyed[-1][1], keyed[-1][2])),
            linked=linked,
            id_range=(linked[0].id, linked[-1].id),
        ))
    return jobs


def compute_share(conn: Connection, config: ScoringConfig, as_of: datetime, job: ShareJob,
                  detail_for: set[int]) -> Share:
    """Every family's signals for one share of the accounts, on ``conn``."""
    started = time.perf_counter()
    keyed = _Builder(conn, config, as_of, job.keyed, detail_for & {a.id for a in job.keyed}, subset=True,
                     key_range=job.key_range)
    keyed.run(keyed.KEYED_FAMILIES)
    linked = _Builder(conn, config, as_of, job.linked, set(), subset=True, id_range=job.id_range)
    linked.run(linked.LINKED_FAMILIES)
    return Share(
        parts=[(keyed.ids, keyed.values), (linked.ids, linked.values)],
        champions={job.keyed[pos].id: champion for pos, champion in keyed.champions.items()},
        contacts={job.keyed[pos].id: details for pos, details in keyed.contacts.items()},
        seconds=time.perf_counter() - started,
    )


def _share_in_worker(url: str, config: ScoringConfig, as_of: datetime, job: ShareJob, detail_for: set[int]) -> Share:
    """A worker process's entry point: its own engine, one share."""
    from store.db import make_engine

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return compute_share(conn, config, as_of, job, detail_for)
    finally:
        engine.dispose()


def _merge(b: _Builder, share: Share) -> float:
    """Put a share's columns into the frame's; returns the share's seconds (for the log)."""
    n = len(b.accounts)
    for ids, values in share.parts:
        at = np.fromiter((b.pos[id_] for id_ in ids), dtype=np.int64, count=len(ids))
        for name, column in values.items():
            if name not in b.values:  # a column outside the catalogue (touches_period, days_since_touch)
                b.values[name] = np.full(n, np.nan)
            b.values[name][at] = column
    b.champions.update({b.pos[id_]: champion for id_, champion in share.champions.items()})
    b.contacts.update({b.pos[id_]: details for id_, details in share.contacts.items()})
    return share.seconds


def _context() -> multiprocessing.context.BaseContext:
    """spawn: a fresh interpreter per worker, safe in a process with threads (the scheduler, the health server),
    and started without waiting for it (a forkserver makes the caller wait for its first start-up)."""
    return multiprocessing.get_context("spawn")


class Workers:
    """Worker processes for the shares after the first, started before the caller loads its accounts so that
    their start-up (about a second of imports) overlaps that work."""

    def __init__(self, shares: int) -> None:
        self.shares = shares
        self.pool: ProcessPoolExecutor | None = None
        try:
            self.pool = ProcessPoolExecutor(max_workers=shares - 1, mp_context=_context())
            for _ in range(shares - 1):
                self.pool.submit(_warm)
        except (OSError, NotImplementedError) as exc:  # no semaphores or processes here: one process does all
            log.warning("scoring workers could not start (%s); computing every share in this process", exc)

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *_: object) -> None:
        if self.pool is not None:
            self.pool.shutdown(wait=True, cancel_futures=True)

    def compute(self, b: _Builder) -> None:
        """Fill the builder's columns, champions and contacts from the shares computed side by side."""
        started = time.perf_counter()
        jobs = plan_shares(b, self.shares)
        if not jobs:  # no account existed at as_of: nothing to share; the empty frame as one process makes it
            b.all_families()
            return
        url = _worker_url(b.conn)
        pending = [(job, self.pool.submit(_share_in_worker, url, b.config, b.as_of, job, b.detail_for)
                    if self.pool is not None else None) for job in jobs[1:]]
        seconds = [_merge(b, compute_share(b.conn, b.config, b.as_of, jobs[0], b.detail_for))]
        for job, future in pending:
            share: Share | None = None
            if future is not None:
                try:
                    share = future.result()
                except Exception as exc:  # a crashed or failing worker: this process does its share
                    log.warning("a scoring worker failed (%s); computing its share of %d accounts here",
                                redact(f"{type(exc).__name__}: {exc}"), len(job.linked))
            seconds.append(_merge(b, share or compute_share(b.conn, b.config, b.as_of, job, b.detail_for)))
        log.info("signals for %d accounts in %d shares in %.2fs (each share: %s)", len(b.accounts), len(jobs),
                 time.perf_counter() - started, ", ".join(f"{s:.2f}s" for s in seconds))


def _warm() -> None:
    """Nothing: submitted at start so the pool starts its processes at once, not at the first share."""


__all__ = ["Share", "ShareJob", "Workers", "compute_share", "plan_shares", "worker_count"]
