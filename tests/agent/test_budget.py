"""The pre-run API budget: headroom after the reserve, and what is deferred when a run is short."""

from __future__ import annotations

from agent.budget import (
    PRIORITY_ESSENTIAL_PULL,
    PRIORITY_OTHER_PULL,
    PRIORITY_SCORE_WRITES,
    PRIORITY_TASKS,
    WorkItem,
    hubspot_headroom,
    plan_budget,
    pull_priority,
    salesforce_headroom,
    write_calls,
)


def test_salesforce_headroom_keeps_the_reserve_and_caps_pulls_at_their_share() -> None:
    room = salesforce_headroom(15_000, 9_000, reserve_share=0.2, pull_share=0.5)
    assert room.reserve == 3_000
    assert room.available == 6_000  # 9,000 left minus the 3,000 reserve
    assert room.pull_cap == 1_500  # pulls stop at 7,500 used; 6,000 used already
    assert salesforce_headroom(15_000, 2_000, reserve_share=0.2, pull_share=0.5).available == 0


def test_hubspot_headroom_prefers_the_api_remaining_count() -> None:
    assert hubspot_headroom(625_000, used_today=25_000).available == 600_000
    assert hubspot_headroom(625_000, used_today=25_000, remaining=1_000).available == 1_000


def _items() -> list[WorkItem]:
    return [
        WorkItem("pull:salesforce/accounts", "salesforce", 5, pull_priority("accounts")),
        WorkItem("pull:salesforce/tasks", "salesforce", 40, pull_priority("activities")),
        WorkItem("pull:salesforce/opportunities", "salesforce", 30, pull_priority("deals")),
        WorkItem("write:salesforce", "salesforce", 20, PRIORITY_SCORE_WRITES),
        WorkItem("tasks:salesforce", "salesforce", 10, PRIORITY_TASKS),
        WorkItem("pull:nps/responses", "nps", 500, PRIORITY_OTHER_PULL),
    ]


def test_short_budget_pulls_accounts_and_activities_and_writes_scores_first() -> None:
    room = {"salesforce": salesforce_headroom(1_000, 270, reserve_share=0.2, pull_share=1.0)}  # 70 available
    plan = plan_budget(_items(), room)
    assert [i.key for i in plan.included] == [
        "pull:salesforce/accounts", "pull:salesforce/tasks", "write:salesforce", "pull:nps/responses",
    ]
    assert [i.key for i in plan.deferred] == ["pull:salesforce/opportunities", "tasks:salesforce"]
    assert plan.notes(room)[0] == (
        "pull salesforce/opportunities: about 30 salesforce API calls needed, 70 available this run after the "
        "reserve; left for the next run"
    )


def test_smaller_later_work_still_runs_when_it_fits() -> None:
    room = {"salesforce": salesforce_headroom(1_000, 280, reserve_share=0.2, pull_share=1.0)}  # 80 available
    plan = plan_budget(_items(), room)
    assert [i.key for i in plan.deferred] == ["pull:salesforce/opportunities"]
    assert plan.estimated("salesforce", "pull:") == 75


def test_pull_share_defers_pulls_but_not_writes() -> None:
    room = {"salesforce": salesforce_headroom(1_000, 1_000, reserve_share=0.2, pull_share=0.01)}  # pulls: 10 calls
    plan = plan_budget(_items(), room)
    assert [i.key for i in plan.included if i.system == "salesforce"] == [
        "pull:salesforce/accounts", "write:salesforce", "tasks:salesforce",
    ]


def test_enough_budget_defers_nothing() -> None:
    plan = plan_budget(_items(), {"salesforce": salesforce_headroom(15_000, 15_000, reserve_share=0.2, pull_share=0.5)})
    assert plan.deferred == []


def test_write_calls_read_and_write_each_batch() -> None:
    assert write_calls(401, 200) == 6
    assert write_calls(0, 200) == 0
    assert pull_priority("contacts") == PRIORITY_ESSENTIAL_PULL
