"""Scorecards: the signal catalogue, measures and their normalizations, weights, bands, flags, relationship strength.

The catalogue (``SIGNALS``) is the vocabulary a scorecard may use: each signal's unit and window are documented
here, next to the options that read them, so ``health-agent config schema`` and the example file agree.
``scoring/`` computes the signals (set-based SQL over the store) and applies this configuration.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import AfterValidator, Discriminator, Field, Tag, model_validator

from core.config.base import StrictModel


@dataclass(frozen=True)
class SignalSpec:
    """One catalogue entry: what the number is, in which unit, over which window."""

    family: str
    unit: str
    window: str
    description: str


SIGNALS: dict[str, SignalSpec] = {
    # usage (usage_metrics, complete calendar months before as_of)
    "seat_utilization": SignalSpec("usage", "ratio 0-1+", "last complete month", "active users / licensed seats"),
    "usage_trend": SignalSpec(
        "usage", "ratio, -1..+inf", "last month vs the 3 before", "change of active users against the prior 3 months"
    ),
    "feature_adoption": SignalSpec("usage", "ratio 0-1", "last complete month", "share of key features used"),
    # billing (invoices)
    "days_overdue": SignalSpec("billing", "days", "open invoices at as_of", "oldest unpaid invoice, days past due"),
    "overdue_share_of_arr": SignalSpec("billing", "ratio", "open invoices at as_of", "overdue amount / ARR"),
    "failed_payments_180d": SignalSpec("billing", "count", "180 days", "failed payment attempts on invoices issued"),
    # support (tickets)
    "tickets_30d": SignalSpec("support", "count", "30 days", "tickets opened"),
    "tickets_90d": SignalSpec("support", "count", "90 days", "tickets opened"),
    "open_high_priority_tickets": SignalSpec("support", "count", "at as_of", "P1/P2 tickets open at as_of"),
    "escalations_90d": SignalSpec("support", "count", "90 days", "escalated tickets opened"),
    "median_resolution_hours": SignalSpec("support", "hours", "180 days", "median open-to-close time"),
    # feedback (survey_responses)
    "nps_latest": SignalSpec("feedback", "score 0-10", "ever, before as_of", "the latest NPS answer"),
    "nps_180d": SignalSpec("feedback", "NPS -100..100", "180 days", "% promoters minus % detractors"),
    "csat_avg_180d": SignalSpec("feedback", "score 1-5", "180 days", "mean CSAT answer"),
    "detractor_90d": SignalSpec("feedback", "boolean", "90 days", "an NPS answer of 0-6"),
    # engagement (activities)
    "days_since_two_way_touch": SignalSpec(
        "engagement", "days", "ever, before as_of", "days since a meeting, or a call or email marked inbound or two-way"
    ),
    "touches_90d": SignalSpec("engagement", "count", "90 days", "emails, calls and meetings"),
    "meetings_90d": SignalSpec("engagement", "count", "90 days", "meetings"),
    "exec_meeting_180d": SignalSpec("engagement", "boolean", "180 days", "a meeting with a C-level or VP contact"),
    "days_since_exec_touch": SignalSpec(
        "engagement", "days", "relationship window", "days since any touch with a C-level or VP contact"
    ),
    # relationship capital (activities x participants x contacts)
    "relationship_capital": SignalSpec("relationship", "points 0-100", "relationship window", "contact strength sum"),
    "thread_count": SignalSpec("relationship", "contacts", "engaged window", "distinct contacts engaged"),
    "seniority_levels_engaged": SignalSpec("relationship", "count", "engaged window", "seniority levels engaged"),
    "departments_engaged": SignalSpec(
        "relationship", "count", "engaged window", "distinct departments engaged (letters A-Z compared without case)"
    ),
    "exec_sponsor_engaged": SignalSpec("relationship", "boolean", "engaged window", "a C-level or VP contact engaged"),
    # flags, usable as boolean measures
    "single_threaded": SignalSpec("flag", "boolean", "engaged window", "see flags.single_threaded"),
    "lonely_client": SignalSpec("flag", "boolean", "flags.lonely_client.period_days", "see flags.lonely_client"),
    "champion_gone": SignalSpec("flag", "boolean", "relationship window", "see flags.champion_gone"),
    "expansion_signal": SignalSpec("flag", "boolean", "intent.window_days", "see flags.expansion_signal"),
    # intent
    "intent_expansion": SignalSpec("intent", "score 0-100", "intent.window_days", "top surge on expansion topics"),
    "intent_risk": SignalSpec("intent", "score 0-100", "intent.window_days", "top surge on risk topics (competitors)"),
    # contract
    "days_to_renewal": SignalSpec("contract", "days", "at as_of", "days until the next renewal"),
    "tenure_days": SignalSpec("contract", "days", "at as_of", "days since the account was created"),
    "arr": SignalSpec("contract", "currency", "current", "annual recurring revenue"),
}

FLAG_NAMES = ("single_threaded", "lonely_client", "champion_gone", "expansion_signal")
_IDENT = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


def _identifier(value: str) -> str:
    if not _IDENT.match(value):
        raise ValueError(f"use lowercase letters, digits and _ starting with a letter (got {value!r})")
    return value


def _known_signal(value: str) -> str:
    if value in SIGNALS or value.startswith("custom."):
        return value
    raise ValueError(f"unknown signal {value!r} (known: {', '.join(sorted(SIGNALS))}, or custom.<name>)")


Identifier = Annotated[str, AfterValidator(_identifier)]
SignalName = Annotated[str, AfterValidator(_known_signal)]
Points = Annotated[float, Field(ge=0, le=100)]
Weight = Annotated[float, Field(gt=0)]


class LinearNormalization(StrictModel):
    """Points rise linearly from 0 at ``bad`` to 100 at ``good`` (either order), clamped outside."""

    kind: Literal["linear"]
    bad: float = Field(description="Raw value worth 0 points.")
    good: float = Field(description="Raw value worth 100 points; below `bad` means lower is better.")

    @model_validator(mode="after")
    def _distinct(self) -> LinearNormalization:
        if self.bad == self.good:
            raise ValueError("bad and good must differ")
        return self


class Tier(StrictModel):
    at_least: float = Field(description="The tier applies when raw >= at_least.")
    points: Points


def _ascending_tiers(tiers: list[Tier]) -> list[Tier]:
    if not tiers:
        raise ValueError("give at least one tier")
    bounds = [t.at_least for t in tiers]
    if bounds != sorted(bounds) or len(set(bounds)) != len(bounds):
        raise ValueError(f"tiers must be in strictly ascending at_least order (got {bounds})")
    return tiers


class TieredNormalization(StrictModel):
    """Thresholds to points: the last tier whose ``at_least`` the raw value reaches; ``below`` under the first."""

    kind: Literal["tiered"]
    tiers: Annotated[list[Tier], AfterValidator(_ascending_tiers)]
    below: Points = Field(default=0, description="Points when raw is below every tier.")


class PercentileNormalization(StrictModel):
    """Points = the raw value's percentile among the accounts of the same scorecard (0-100)."""

    kind: Literal["percentile"]
    higher_is_better: bool = True


class BooleanNormalization(StrictModel):
    kind: Literal["boolean"]
    true_points: Points = 100
    false_points: Points = 0


class CategoricalNormalization(StrictModel):
    """A category (text) to points; ``default`` for categories not listed (missing when None)."""

    kind: Literal["categorical"]
    points: dict[str, Points]
    default: Points | None = None


_NORMALIZATION_KINDS = ("linear", "tiered", "percentile", "boolean", "categorical")


def _normalization_tag(value: object) -> str | None:
    """The union member for a normalization; tags are bracketed so error paths name only keys in the file."""
    kind = value.get("kind") if isinstance(value, dict) else getattr(value, "kind", None)
    return f"[{kind}]" if kind in _NORMALIZATION_KINDS else None


Normalization = Annotated[
    Annotated[LinearNormalization, Tag("[linear]")]
    | Annotated[TieredNormalization, Tag("[tiered]")]
    | Annotated[PercentileNormalization, Tag("[percentile]")]
    | Annotated[BooleanNormalization, Tag("[boolean]")]
    | Annotated[CategoricalNormalization, Tag("[categorical]")],
    Discriminator(
        _normalization_tag,
        custom_error_type="normalization_kind",
        custom_error_message=f"kind must be one of {', '.join(_NORMALIZATION_KINDS)}",
    ),
]


class Measure(StrictModel):
    """A signal, how it becomes 0-100 points, its weight and what to do when it has no data."""

    name: Identifier
    signal: SignalName
    normalization: Normalization
    weight: Weight = 1.0
    group: Identifier | None = Field(default=None, description="A key of the scorecard's `groups`.")
    missing: Literal["skip", "neutral", "worst"] = Field(
        default="skip",
        description="skip: leave out and re-weight the rest; neutral: 50 points; worst: 0 points.",
    )
    label: str | None = Field(default=None, max_length=60, description="Plain-language name in explanations.")


def _known_tiers(values: list[str]) -> list[str]:
    return [v.strip().lower() for v in values]


class SegmentFilter(StrictModel):
    """Which accounts a scorecard is for; every given condition must hold (empty: every account)."""

    tiers: Annotated[list[str], AfterValidator(_known_tiers)] = Field(default_factory=list)
    min_arr: float | None = Field(default=None, ge=0)
    max_arr: float | None = Field(default=None, ge=0)


class Scorecard(StrictModel):
    name: Identifier
    when: SegmentFilter = SegmentFilter()
    groups: dict[str, Weight] = Field(default_factory=dict, description="Group name -> weight; measures name one.")
    measures: list[Measure] = Field(min_length=1)

    @model_validator(mode="after")
    def _groups_match(self) -> Scorecard:
        names = [m.name for m in self.measures]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"measure names must be unique (repeated: {', '.join(dupes)})")
        for m in self.measures:
            if self.groups and m.group not in self.groups:
                raise ValueError(f"measure {m.name!r}: group {m.group!r} is not one of {sorted(self.groups)}")
            if not self.groups and m.group is not None:
                raise ValueError(f"measure {m.name!r} names group {m.group!r} but the scorecard defines no groups")
        return self


class Band(StrictModel):
    name: Identifier
    min_score: Points = Field(description="The band starts at this score (inclusive).")


def _bands_ascending(bands: list[Band]) -> list[Band]:
    if not bands or bands[0].min_score != 0:
        raise ValueError("the first band must start at min_score 0")
    bounds = [b.min_score for b in bands]
    if bounds != sorted(bounds) or len(set(bounds)) != len(bounds):
        raise ValueError(f"bands must be in strictly ascending min_score order (got {bounds})")
    names = [b.name for b in bands]
    if len(set(names)) != len(names):
        raise ValueError("band names must be unique")
    return bands


class SingleThreadedFlag(StrictModel):
    max_threads: int = Field(default=1, ge=0, description="On when engaged contacts <= this...")
    min_arr: float = Field(default=50_000, ge=0, description="...and ARR is above this.")


class LonelyClientFlag(StrictModel):
    period_days: int = Field(default=90, ge=7, description="Attention is counted in touches over this period.")
    share_of_expected: float = Field(
        default=0.4, gt=0, le=1, description="On below this share of the touches its tier and ARR warrant."
    )
    max_days_without_touch: int = Field(default=60, ge=1, description="Also on when no touch for this many days.")


class ChampionGoneFlag(StrictModel):
    min_prior_touches: int = Field(
        default=3, ge=1, description="The champion had at least this many touches before the engaged window."
    )


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def fold_case(text: str) -> str:
    """``text`` with the letters A-Z lowercased and no other, as scoring's SQL compares text on every backend
    (SQLite's built-in lower() folds no other letter): "Ärger" and "ärger" stay two topics."""
    return text.translate(_ASCII_LOWER)


def _lower_topics(values: list[str]) -> list[str]:
    return [fold_case(v.strip()) for v in values if v.strip()]


Topics = Annotated[list[str], AfterValidator(_lower_topics)]


class IntentConfig(StrictModel):
    """Which intent topics (from the intent provider; A-Z compared without case, spaces around ignored) mean
    expansion and which mean risk."""

    window_days: int = Field(default=30, ge=1, le=365, description="Surges observed within this many days count.")
    expansion_topics: Topics = Field(default_factory=lambda: ["expansion", "upgrade", "add seats", "enterprise plan"])
    risk_topics: Topics = Field(
        default_factory=lambda: ["competitor alternatives", "crm migration", "vendor evaluation", "contract exit"]
    )


class ExpansionSignalFlag(StrictModel):
    min_intent_score: float = Field(default=70, ge=0, le=100)
    seat_utilization_above: float = Field(default=0.9, gt=0)
    usage_growth_above: float = Field(default=0.25, gt=0)


class FlagsConfig(StrictModel):
    single_threaded: SingleThreadedFlag = SingleThreadedFlag()
    lonely_client: LonelyClientFlag = LonelyClientFlag()
    champion_gone: ChampionGoneFlag = ChampionGoneFlag()
    expansion_signal: ExpansionSignalFlag = ExpansionSignalFlag()


class IntimacyWeights(StrictModel):
    """Weight of one touch by how close the interaction is (meeting > call > two-way email > one-way email)."""

    meeting: float = Field(default=1.0, ge=0, le=1)
    call: float = Field(default=0.7, ge=0, le=1)
    two_way_email: float = Field(default=0.45, ge=0, le=1)
    one_way_email: float = Field(default=0.15, ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> IntimacyWeights:
        if not self.meeting >= self.call >= self.two_way_email >= self.one_way_email:
            raise ValueError("intimacy must satisfy meeting >= call >= two_way_email >= one_way_email")
        return self


class SeniorityWeights(StrictModel):
    c_level: float = Field(default=1.0, ge=0, le=1)
    vp: float = Field(default=0.85, ge=0, le=1)
    director: float = Field(default=0.7, ge=0, le=1)
    manager: float = Field(default=0.5, ge=0, le=1)
    individual: float = Field(default=0.35, ge=0, le=1)
    unknown: float = Field(default=0.3, ge=0, le=1)


class ComponentWeights(StrictModel):
    """How a contact's strength (0-1 before seniority) mixes its components; they are normalized to sum to 1."""

    recency: float = Field(default=0.35, ge=0)
    frequency: float = Field(default=0.2, ge=0)
    regularity: float = Field(default=0.15, ge=0)
    intimacy: float = Field(default=0.3, ge=0)

    @model_validator(mode="after")
    def _positive(self) -> ComponentWeights:
        if self.recency + self.frequency + self.regularity + self.intimacy <= 0:
            raise ValueError("at least one component weight must be above 0")
        return self


class RelationshipConfig(StrictModel):
    """Relationship capital after Introhive: per-contact strength, summed per account."""

    window_days: int = Field(default=365, ge=30, le=1095, description="Touches older than this are ignored.")
    engaged_days: int = Field(default=90, ge=7, description="A contact touched within this many days is engaged.")
    recency_half_life_days: float = Field(default=45, gt=0, description="Recency halves every this many days.")
    frequency_scale: float = Field(default=8, gt=0, description="Touches at which frequency reaches 63%.")
    intimacy_scale: float = Field(default=4, gt=0, description="Weighted touches at which intimacy reaches 63%.")
    regularity_buckets: int = Field(default=12, ge=2, le=36, description="The window is cut in this many buckets.")
    capital_scale: float = Field(default=1.5, gt=0, description="Summed strength at which capital reaches 63 points.")
    intimacy: IntimacyWeights = IntimacyWeights()
    seniority: SeniorityWeights = SeniorityWeights()
    components: ComponentWeights = ComponentWeights()


class CustomSignal(StrictModel):
    """A mapped custom CRM field (kept in the account's ``extra``) used as signal ``custom.<name>``."""

    field: str = Field(min_length=1, description="The key in the account's mapped extra fields.")
    kind: Literal["numeric", "categorical"] = "numeric"


def _m(name: str, signal: str, norm: dict[str, object], weight: float, group: str, label: str,
       missing: str = "skip") -> dict[str, object]:
    return {"name": name, "signal": signal, "normalization": norm, "weight": weight, "group": group,
            "label": label, "missing": missing}


def _lin(bad: float, good: float) -> dict[str, object]:
    return {"kind": "linear", "bad": bad, "good": good}




def _default_measures() -> list[dict[str, object]]:
    return [
        _m("seat_utilization", "seat_utilization", _lin(0.25, 0.85), 2, "usage", "seat utilization"),
        _m("feature_adoption", "feature_adoption", _lin(0.3, 0.75), 4, "usage", "feature adoption"),
        _m("usage_trend", "usage_trend", _lin(-0.4, 0.15), 1, "usage", "usage trend"),
        _m("nps_latest", "nps_latest", _lin(2, 9), 2, "feedback", "latest NPS"),
        _m("nps_180d", "nps_180d", _lin(-100, 100), 1, "feedback", "NPS (180d)"),
        _m("csat", "csat_avg_180d", _lin(2, 4.5), 2, "feedback", "CSAT"),
        _m("last_two_way_touch", "days_since_two_way_touch", _lin(150, 10), 2, "engagement", "last two-way touch",
           "worst"),
        _m("touches_90d", "touches_90d", _lin(0, 6), 1, "engagement", "touches in 90d", "worst"),
        _m("relationship_capital", "relationship_capital", _lin(0, 45), 2, "relationship", "relationship capital",
           "worst"),
        _m("thread_count", "thread_count", _lin(0, 3), 1, "relationship", "engaged contacts", "worst"),
        _m("tickets_90d", "tickets_90d", _lin(3, 0), 1, "support", "tickets in 90d", "neutral"),
        _m("resolution_time", "median_resolution_hours", _lin(300, 24), 1, "support", "ticket resolution time"),
        _m("days_overdue", "days_overdue", _lin(60, 0), 1, "billing", "days overdue"),
        _m("expansion_intent", "intent_expansion", _lin(40, 85), 2, "intent", "expansion intent"),
        _m("competitor_intent", "intent_risk", _lin(75, 35), 1, "intent", "competitor intent"),
    ]


def _default_scorecards() -> list[Scorecard]:
    groups = {"usage": 40.0, "feedback": 15.0, "engagement": 10.0, "relationship": 10.0, "support": 15.0,
              "billing": 5.0, "intent": 5.0}
    return [Scorecard.model_validate({"name": "default", "groups": groups, "measures": _default_measures()})]


def _default_bands() -> list[Band]:
    return [Band(name="red", min_score=0), Band(name="yellow", min_score=40), Band(name="green", min_score=70)]


class ScoringConfig(StrictModel):
    """Scorecards (the first whose `when` matches an account scores it), bands, flags and relationship strength."""

    scorecards: list[Scorecard] = Field(default_factory=_default_scorecards, min_length=1)
    bands: Annotated[list[Band], AfterValidator(_bands_ascending)] = Field(default_factory=_default_bands)
    hysteresis_points: float = Field(
        default=3, ge=0, le=20, description="A band changes only when the score passes the boundary by this much."
    )
    coverage_floor: float = Field(
        default=0.6, ge=0, le=1, description="Below this share of weight with data, a score is low-confidence."
    )
    trend_days: int = Field(default=30, ge=1, description="The trend compares with the score this many days ago.")
    flat_points: float = Field(default=2, ge=0, description="A trend within +/- this many points is flat.")
    history_keep_days: int | None = Field(
        default=400, ge=2,
        description="Stored scores older than this many days are deleted after each run, except each account's "
                    "latest (about 4 KB per account per run); null keeps them all.",
    )
    flags: FlagsConfig = FlagsConfig()
    intent: IntentConfig = IntentConfig()
    relationship: RelationshipConfig = RelationshipConfig()
    custom_signals: dict[Identifier, CustomSignal] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _custom_signals_defined(self) -> ScoringConfig:
        for card in self.scorecards:
            for m in card.measures:
                if m.signal.startswith("custom.") and m.signal[len("custom."):] not in self.custom_signals:
                    raise ValueError(
                        f"scorecard {card.name!r} measure {m.name!r}: {m.signal} is not in custom_signals"
                    )
        names = [c.name for c in self.scorecards]
        if len(set(names)) != len(names):
            raise ValueError("scorecard names must be unique")
        return self

    @model_validator(mode="after")
    def _history_outlives_the_trend(self) -> ScoringConfig:
        if self.history_keep_days is not None and self.history_keep_days <= self.trend_days:
            raise ValueError(f"history_keep_days ({self.history_keep_days}) must be more than trend_days "
                             f"({self.trend_days}): the trend compares with a score that old")
        return self

    def band_names(self) -> list[str]:
        return [b.name for b in self.bands]
