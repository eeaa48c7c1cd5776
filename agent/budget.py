"""The pre-run API budget: estimate the calls a run needs per system and, when short, keep what matters first.

Order of importance: pulling accounts, contacts and activities; writing scores; pulling everything else;
creating and closing tasks. Work that does not fit is deferred to the next run and named in the report.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

# Lower runs first. Streams filling these canonical tables are what a score needs most.
ESSENTIAL_ENTITIES = frozenset({"accounts", "contacts", "activities"})
PRIORITY_ESSENTIAL_PULL = 0
PRIORITY_SCORE_WRITES = 1
PRIORITY_OTHER_PULL = 2
PRIORITY_TASKS = 3
FIRST_PULL_CALLS = 10  # a stream never pulled before: a guess at its backfill's calls (pages + describe)


@dataclass(frozen=True)
class WorkItem:
    """One piece of a run's work on one system, with its estimated API calls."""

    key: str  # "pull:<source>/<stream>", "write:<crm>" or "tasks:<crm>"
    system: str  # the API it spends calls on: salesforce, hubspot, nps, ...
    calls: int
    priority: int

    @property
    def label(self) -> str:
        kind, _, what = self.key.partition(":")
        return {"pull": f"pull {what}", "write": f"score writes to {what}", "tasks": f"tasks in {what}"}[kind]


@dataclass(frozen=True)
class Headroom:
    """What one system allows this run: calls left today minus the reserve kept for others.

    ``pull_cap``: a lower cap for pulls alone (Salesforce's pull share of the daily limit), or None.
    """

    system: str
    available: int | None  # None: no known limit
    pull_cap: int | None = None
    daily_limit: int | None = None
    remaining: int | None = None
    reserve: int | None = None


@dataclass
class BudgetPlan:
    included: list[WorkItem] = field(default_factory=list)
    deferred: list[WorkItem] = field(default_factory=list)

    def is_deferred(self, key: str) -> bool:
        return any(item.key == key for item in self.deferred)

    def estimated(self, system: str, kind: str) -> int:
        """Estimated calls of the included and deferred work of one kind (pull, write, tasks) on a system."""
        return sum(i.calls for i in [*self.included, *self.deferred] if i.system == system and i.key.startswith(kind))

    def notes(self, headroom: Mapping[str, Headroom]) -> list[str]:
        """One plain sentence per deferred item: what waits, and why."""
        out = []
        for item in self.deferred:
            room = headroom.get(item.system)
            left = room.available if room else None
            out.append(
                f"{item.label}: about {item.calls} {item.system} API calls needed, "
                f"{left if left is not None else 'unknown'} available this run after the reserve; left for the next run"
            )
        return out


def salesforce_headroom(
    daily_limit: int, remaining: int, *, reserve_share: float, pull_share: float
) -> Headroom:
    """Salesforce calls the agent may use now: remaining minus the reserve (shares of the daily limit, 0-1).

    Pulls alone also stop once the org's usage (by anyone) reaches ``pull_share`` of the daily limit
    (never beyond the reserve), as the Salesforce client itself enforces.
    """
    reserve = math.ceil(daily_limit * reserve_share)
    used = daily_limit - remaining
    return Headroom(
        system="salesforce",
        available=max(remaining - reserve, 0),
        pull_cap=max(math.floor(daily_limit * min(pull_share, 1 - reserve_share)) - used, 0),
        daily_limit=daily_limit,
        remaining=remaining,
        reserve=reserve,
    )


def hubspot_headroom(daily_limit: int, used_today: int, remaining: int | None = None) -> Headroom:
    """HubSpot calls left today: the API's own remaining count when it sent one, else the limit minus our use."""
    left = remaining if remaining is not None else daily_limit - used_today
    return Headroom(system="hubspot", available=max(left, 0), daily_limit=daily_limit, remaining=left, reserve=0)


def plan_budget(items: Iterable[WorkItem], headroom: Mapping[str, Headroom]) -> BudgetPlan:
    """Take work in priority order while each system's calls fit; defer what does not fit.

    A later, smaller item still runs when it fits in what is left (a stream is not held back by a bigger one).
    """
    spent: dict[str, int] = {}
    spent_pull: dict[str, int] = {}
    plan = BudgetPlan()
    for item in sorted(items, key=lambda i: (i.priority, i.key)):
        room = headroom.get(item.system)
        if room is None or room.available is None:
            plan.included.append(item)
            continue
        fits = spent.get(item.system, 0) + item.calls <= room.available
        if item.key.startswith("pull:") and room.pull_cap is not None:
            fits = fits and spent_pull.get(item.system, 0) + item.calls <= room.pull_cap
        if not fits:
            plan.deferred.append(item)
            continue
        plan.included.append(item)
        spent[item.system] = spent.get(item.system, 0) + item.calls
        if item.key.startswith("pull:"):
            spent_pull[item.system] = spent_pull.get(item.system, 0) + item.calls
    return plan


def pull_priority(entity: str) -> int:
    return PRIORITY_ESSENTIAL_PULL if entity in ESSENTIAL_ENTITIES else PRIORITY_OTHER_PULL


def write_calls(records: int, batch_size: int) -> int:
    """Calls to read current values and write changes for ``records`` records, in batches (worst case)."""
    return 2 * math.ceil(records / batch_size) if records else 0
