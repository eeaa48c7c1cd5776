"""The run report: the scoring summary built from the store, and its text and HTML renderings."""

from __future__ import annotations

import re
import shutil
import struct
import subprocess
import zlib
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import Engine

from agent.report import (
    ApiUsage,
    AtRisk,
    Mover,
    RunReport,
    ScoringSummary,
    StreamSummary,
    WritebackSummary,
    WriteFailure,
    band_movement_svg,
    summarize_scores,
)
from tests.agent.helpers import BANDS, T0, add_accounts, add_run, add_scores


@pytest.fixture
def two_runs(store_engine: Engine) -> list[int]:
    ids = add_accounts(store_engine, ["Acme", "Globex", "Initech", "O'Brien & Müller"])
    add_run(store_engine, "run-1", minutes=0)
    add_scores(store_engine, "run-1", {ids[0]: (80, "green"), ids[1]: (55, "yellow"), ids[2]: (30, "red"), ids[3]: (72, "green")})
    add_run(store_engine, "run-2", minutes=60)
    add_scores(
        store_engine, "run-2",
        {ids[0]: (62, "yellow"), ids[1]: (55, "yellow"), ids[2]: (8, "red"), ids[3]: (91.5, "green")},
        flags={ids[2]: ["single_threaded", "champion_gone"], ids[3]: ["expansion_signal"]},
    )
    return ids


def test_scoring_summary_counts_bands_flags_and_movement_against_previous_run(store_engine: Engine, two_runs: list[int]) -> None:
    summary = summarize_scores(store_engine, "run-2", BANDS, top=10)
    assert summary.accounts == 4
    assert summary.band_counts == {"red": 1, "yellow": 2, "green": 1}
    assert summary.previous_band_counts == {"green": 2, "yellow": 1, "red": 1}
    assert summary.band_movements == {"green": {"yellow": 1, "green": 1}, "yellow": {"yellow": 1}, "red": {"red": 1}}
    assert summary.score_histogram == [1, 0, 0, 0, 0, 1, 1, 0, 0, 1]
    assert summary.flag_counts == {"single_threaded": 1, "lonely_client": 0, "champion_gone": 1, "expansion_signal": 1}
    assert summary.low_confidence == 1
    assert [(m.name, m.delta, m.previous_band, m.band) for m in summary.movers] == [
        ("Initech", -22.0, "red", "red"),
        ("O'Brien & Müller", 19.5, "green", "green"),
        ("Acme", -18.0, "green", "yellow"),
    ]
    assert [(a.name, a.score, a.flags) for a in summary.at_risk] == [
        ("Initech", 8.0, ["champion_gone", "single_threaded"]),
        ("Globex", 55.0, []),
        ("Acme", 62.0, []),
        ("O'Brien & Müller", 91.5, ["expansion_signal"]),
    ]


def test_first_run_has_no_movers(store_engine: Engine, two_runs: list[int]) -> None:
    summary = summarize_scores(store_engine, "run-1", BANDS)
    assert summary.movers == []
    assert summary.previous_band_counts == {}


def _report(store_engine: Engine) -> RunReport:
    return RunReport(
        run_id="run-2",
        status="partial",
        started_at=T0,
        finished_at=T0.replace(minute=1),
        streams=[
            StreamSummary(source="salesforce", stream="accounts", records=4, pages=1, api_calls=1, seconds=0.2),
            StreamSummary(source="salesforce", stream="tasks", records=120, pages=2, api_calls=2, retries=1),
            StreamSummary(source="nps", stream="responses", error="NPS API refused the key (401)"),
        ],
        api=[
            ApiUsage(
                system="salesforce", calls=9, floor_calls=7, pull_calls=3, pull_floor=3, write_calls=1, write_floor=1,
                other_calls=5, daily_limit=15000, remaining=14000,
            )
        ],
        scoring=summarize_scores(store_engine, "run-2", BANDS),
        writeback=WritebackSummary(
            planned_changes=5, fields_written=5, records_written=2, tasks_created=1,
            failures=[WriteFailure(crm="salesforce", record_id="001X", error="UNABLE_TO_LOCK_ROW <script>")],
        ),
        deferred=["hubspot tasks: 3 follow-up tasks wait for the next run (API budget)"],
    )


def test_text_report_names_every_stream_band_and_failure(store_engine: Engine, two_runs: list[int]) -> None:
    text = _report(store_engine).render_text()
    assert "Run run-2 (cli): partial in 60.0 s" in text
    assert re.search(r"salesforce\s+tasks\s+120 records\s+2 pages\s+2 calls\s+1 retries", text)
    assert "ERROR: NPS API refused the key (401)" in text
    assert "Scored 4 accounts: red 1, yellow 2, green 1" in text
    assert "5 fields written on 2 records, 1 tasks created, 0 closed, 1 failures" in text
    assert (
        "salesforce      9 calls: pull 3 (floor 3), writes 1 (floor 1), tasks and other 5, 0 retries;"
        " 14,000 of 15,000 left today"
    ) in text
    assert "Deferred: hubspot tasks: 3 follow-up tasks wait" in text


def test_html_report_is_self_contained_with_three_charts_and_escaped_text(store_engine: Engine, two_runs: list[int]) -> None:
    html = _report(store_engine).render_html()
    assert html.count("<svg") == 3
    for section in ("score-distribution", "band-movements", "top-movers", "at-risk"):
        assert f'id="{section}"' in html
    assert re.findall(r"(?:src|href)=\"https?://", html) == []
    assert "<script" not in html
    assert "UNABLE_TO_LOCK_ROW &lt;script&gt;" in html
    assert "O&#39;Brien &amp; Müller" in html
    assert html.count('class="bar"') == 10 + 6 + 3


def test_report_round_trips_through_json(store_engine: Engine, two_runs: list[int]) -> None:
    report = _report(store_engine)
    again = RunReport.model_validate(report.to_dict())
    assert again == report
    assert report.to_dict()["duration_seconds"] == 60.0
    assert report.records_by_source() == {"salesforce": 124, "nps": 0}


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)


def _screenshot(url: str, png: Path) -> bytes:
    subprocess.run(
        [str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={png}", "--window-size=1200,1600",
         url],
        check=True, timeout=90, capture_output=True,
    )
    return png.read_bytes()


def _pixels(png: bytes) -> Counter[tuple[int, ...]]:
    """Colour counts of an 8-bit RGB or RGBA, non-interlaced PNG (what Chromium writes)."""
    width, height, depth, colour = struct.unpack(">IIBB", png[16:26])
    assert depth == 8 and colour in (2, 6)
    channels = 3 if colour == 2 else 4
    data, pos = b"", 8
    while pos < len(png):
        length, kind = struct.unpack(">I4s", png[pos:pos + 8])
        if kind == b"IDAT":
            data += png[pos + 8:pos + 8 + length]
        pos += 12 + length
    raw, stride = zlib.decompress(data), width * channels
    counts: Counter[tuple[int, ...]] = Counter()
    previous = bytearray(stride)
    for y in range(height):
        kind, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, up_left = previous[i], previous[i - channels] if i >= channels else 0
            if kind == 1:
                line[i] = (line[i] + left) & 0xFF
            elif kind == 2:
                line[i] = (line[i] + up) & 0xFF
            elif kind == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                p = left + up - up_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else up_left)) & 0xFF
        counts.update(tuple(line[x:x + 3]) for x in range(0, stride, channels * 4))  # every 4th pixel
        previous = line
    return counts


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium is not installed on this machine")
def test_html_report_renders_its_charts_in_headless_chromium(tmp_path: Path) -> None:
    movers = [
        Mover(account_id=i, name=f"Account {i}", crm="salesforce", external_id=f"001{i}", previous_score=50.0,
              score=50.0 + (-1) ** i * 3 * i, previous_band="yellow", band="yellow")
        for i in range(1, 8)
    ]
    scoring = ScoringSummary(
        accounts=300, bands=["red", "yellow", "green"], band_bounds=[0, 40, 70],
        band_counts={"red": 40, "yellow": 90, "green": 170}, previous_band_counts={"red": 35, "yellow": 95, "green": 170},
        score_histogram=[3, 7, 12, 18, 30, 35, 25, 60, 70, 40], movers=movers,
        at_risk=[AtRisk(account_id=1, name="Acme", crm="hubspot", external_id="9", score=8.5, band="red", drivers="no touch")],
    )
    page = tmp_path / "report.html"
    page.write_text(RunReport(run_id="r", started_at=T0, scoring=scoring).render_html(), encoding="utf-8")
    colours = _pixels(_screenshot(page.as_uri(), tmp_path / "report.png"))
    sampled = sum(colours.values())
    # The bars of the charts, in the band colours (sampled every 4th pixel of every row).
    red, yellow, green = colours[(0xC0, 0x39, 0x2B)], colours[(0xF1, 0xC4, 0x0F)], colours[(0x27, 0xAE, 0x60)]
    assert min(red, yellow, green) > 300, (red, yellow, green)
    assert sum(n for c, n in colours.items() if c not in ((255, 255, 255), (250, 250, 250))) > 0.05 * sampled


def test_first_run_band_chart_shows_only_the_current_bars(store_engine: Engine, two_runs: list[int]) -> None:
    first = summarize_scores(store_engine, "run-1", BANDS)
    svg = band_movement_svg(first)
    assert svg.count('class="bar"') == 3
    assert ">before<" not in svg
    assert band_movement_svg(summarize_scores(store_engine, "run-2", BANDS)).count('class="bar"') == 6
