"""``health-agent demo`` in a subprocess: the summary it prints, and the fields it reads back from the emulated CRM."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import select

from core.config.loader import load_config
from store.db import make_engine
from store.models import Account, Run, ScoreHistory

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_demo_prints_the_summary_and_reads_written_fields_back_from_the_crm(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SALESFORCE_", "HUBSPOT_", "HEALTH_"))}
    proc = subprocess.run(
        [sys.executable, "-m", "agent.cli", "demo", "--accounts", "40", "--seed", "7", "--output-dir", str(out)],
        check=False, cwd=ROOT, env={**env, "LOG_FORMAT": "json"}, capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout
    for heading in ("Records pulled per source:", "Bands (", "The ten riskiest accounts:", "Flags:", "Writeback:",
                    "API calls:"):
        assert heading in text
    store = out / "health-agent.db"
    assert f"Store: sqlite:///{store}" in text
    html = re.search(r"HTML report: (\S+)", text)
    assert html is not None and Path(html.group(1)).read_text(encoding="utf-8").count("<svg") == 3

    engine = make_engine(f"sqlite:///{store}")
    with engine.connect() as conn:
        run_id, status, report = conn.execute(select(Run.id, Run.status, Run.report)).one()
        scores = {
            (r.source, r.external_id): r
            for r in conn.execute(
                select(Account.source, Account.external_id, ScoreHistory.score, ScoreHistory.band)
                .join(ScoreHistory, ScoreHistory.account_id == Account.id)
                .where(ScoreHistory.run_id == run_id)
            )
        }
    engine.dispose()
    assert status == "succeeded"
    assert f"Run {run_id}: succeeded" in text
    bands = report["scoring"]["band_counts"]
    assert re.search(rf"Bands \({sum(bands.values())} accounts scored\)", text)
    written = report["writeback"]["fields_written"]
    assert written > 0
    assert re.search(rf"fields written\s+{written}\b", text)

    # The read-back: three accounts, their agent fields as the CRM API returns them, equal to the stored scores.
    config = load_config(ROOT / "config" / "sandbox.yaml", env={"SANDBOX_WAREHOUSE_URL": "sqlite://"})
    readbacks = re.findall(r"^(.+) as the account manager sees it in (\w+) \((\w+)\):\n((?:  .*\n)+)", text, re.M)
    assert len(readbacks) == 3
    for _name, crm, record_id, block in readbacks:
        fields = dict(line.strip().split(None, 1) for line in block.splitlines() if len(line.split()) > 1)
        mapping = config.writeback.salesforce.fields if crm == "salesforce" else config.writeback.hubspot.fields
        stored = scores[(crm, record_id)]
        assert float(fields[mapping["score"]]) == pytest.approx(stored.score, abs=0.05)
        if "band" in mapping:
            assert fields[mapping["band"]] == stored.band
