"""Relationship strength: each component, seniority weighting, and that more contact never lowers strength."""

from __future__ import annotations

import math
from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import Engine

from core.config.scoring import RelationshipConfig
from scoring.relationship import ContactTouches, contact_strength, relationship_capital

RC = RelationshipConfig()


def _t(days: float = 10, meetings: int = 0, calls: int = 0, two_way: int = 0, one_way: int = 0,
       buckets: int = 1) -> ContactTouches:
    return ContactTouches(days, meetings, calls, two_way, one_way, buckets)


def test_recency_halves_every_half_life() -> None:
    assert contact_strength(_t(days=0, meetings=1), "c_level", RC).recency == 1.0
    assert contact_strength(_t(days=45, meetings=1), "c_level", RC).recency == pytest.approx(0.5)
    assert contact_strength(_t(days=90, meetings=1), "c_level", RC).recency == pytest.approx(0.25)


def test_frequency_saturates_with_touches() -> None:
    assert contact_strength(_t(one_way=8), "vp", RC).frequency == pytest.approx(1 - math.exp(-1))
    assert contact_strength(_t(one_way=80), "vp", RC).frequency == pytest.approx(1.0, abs=1e-4)


def test_regularity_is_the_share_of_periods_with_a_touch() -> None:
    assert contact_strength(_t(one_way=6, buckets=6), "vp", RC).regularity == pytest.approx(0.5)
    assert contact_strength(_t(one_way=12, buckets=12), "vp", RC).regularity == 1.0


def test_intimacy_ranks_meeting_over_call_over_two_way_over_one_way_email() -> None:
    values = [contact_strength(t, "vp", RC).intimacy
              for t in (_t(meetings=1), _t(calls=1), _t(two_way=1), _t(one_way=1))]
    assert values == sorted(values, reverse=True)
    assert values[0] == pytest.approx(1 - math.exp(-1.0 / 4))


def test_two_way_ratio_counts_meetings_calls_and_inbound_emails() -> None:
    assert contact_strength(_t(meetings=1, calls=1, two_way=1, one_way=1), "vp", RC).two_way_ratio == 0.75


def test_seniority_weights_the_strength() -> None:
    touches = _t(meetings=2, buckets=2)
    ceo = contact_strength(touches, "c_level", RC)
    ic = contact_strength(touches, "individual", RC)
    assert ic.strength == pytest.approx(ceo.strength * 0.35)
    assert contact_strength(touches, "something_else", RC).seniority_weight == 0.3


def test_capital_is_zero_without_contacts_and_saturates_at_100() -> None:
    assert relationship_capital(0.0, RC) == 0.0
    assert relationship_capital(1.5, RC) == pytest.approx(100 * (1 - math.exp(-1)))
    assert relationship_capital(100.0, RC) == pytest.approx(100.0)


touches = st.builds(
    _t,
    days=st.floats(0, 365),
    meetings=st.integers(0, 30),
    calls=st.integers(0, 30),
    two_way=st.integers(0, 30),
    one_way=st.integers(0, 30),
    buckets=st.integers(1, 12),
)
seniority = st.sampled_from(["c_level", "vp", "director", "manager", "individual", "unknown"])


@given(touches, seniority, st.floats(0, 365))
def test_more_recent_contact_never_lowers_strength(t: ContactTouches, level: str, earlier_by: float) -> None:
    older = replace(t, days_since_last=t.days_since_last + earlier_by)
    assert contact_strength(t, level, RC).strength >= contact_strength(older, level, RC).strength


@given(touches, seniority, st.sampled_from(["meetings", "calls", "two_way_emails", "one_way_emails"]),
       st.integers(1, 20), st.integers(0, 3))
def test_more_frequent_contact_never_lowers_strength(t: ContactTouches, level: str, kind: str, extra: int,
                                                     new_buckets: int) -> None:
    more = replace(t, **{kind: getattr(t, kind) + extra},
                   active_buckets=min(12, t.active_buckets + new_buckets))
    assert contact_strength(more, level, RC).strength >= contact_strength(t, level, RC).strength


@given(st.lists(st.floats(0, 1), max_size=10), st.floats(0, 1))
def test_another_contact_never_lowers_capital(strengths: list[float], another: float) -> None:
    assert relationship_capital(sum(strengths) + another, RC) >= relationship_capital(sum(strengths), RC)


def test_the_sql_strength_is_the_numpy_strength(store_engine: Engine) -> None:
    """Scoring sums strengths in the database (``strength_sql``): the same formula as ``contact_strengths``,
    on each backend, over a grid of touches with every seniority level and a non-default configuration."""
    import numpy as np
    from sqlalchemy import Column, Float, Integer, MetaData, Table, insert, select

    from scoring.relationship import contact_strengths, seniority_weights, strength_sql
    from scoring.signals import SENIORITY_LEVELS

    rng = np.random.default_rng(5)
    n = 400
    rows = [(float(rng.uniform(0, 400)), *(int(x) for x in rng.integers(0, 12, 4)), int(rng.integers(1, 15)),
             int(rng.integers(0, len(SENIORITY_LEVELS)))) for _ in range(n)]
    rows[0] = (0.0, 1, 0, 0, 0, 1, 0)  # a touch at as_of, the only one
    names = ("days", "meetings", "calls", "two_way", "one_way", "buckets", "level")
    table = Table("strength_inputs", MetaData(), Column("id", Integer, primary_key=True),
                  *[Column(x, Float if x == "days" else Integer) for x in names])
    table.create(store_engine)
    with store_engine.begin() as conn:
        conn.execute(insert(table), [dict(zip(("id", *names), (i, *r), strict=True)) for i, r in enumerate(rows)])
    for rc in (RC, RC.model_copy(update={"recency_half_life_days": 30.5, "frequency_scale": 3,
                                         "regularity_buckets": 10, "intimacy_scale": 7.25})):
        c = table.c
        stmt = select(strength_sql(c.days, c.meetings, c.calls, c.two_way, c.one_way, c.buckets, c.level,
                                   SENIORITY_LEVELS, rc)).order_by(c.id)
        with store_engine.connect() as conn:
            got = np.array(conn.execute(stmt).scalars().all(), dtype=float)
        cols = [np.array([r[k] for r in rows], dtype=float) for k in range(7)]
        days, meetings, calls, two_way, one_way, buckets, level = cols
        want = contact_strengths(days, meetings, calls, two_way, one_way, buckets,
                                 seniority_weights(SENIORITY_LEVELS, rc)[level.astype(int)], rc)
        np.testing.assert_allclose(got, want.strength, rtol=1e-12, atol=1e-15)
    table.drop(store_engine)
