"""A writeback run in its own process, for the crash test: ``python -m tests.writeback.worker DB_URL RUN_ID AT``.

The sandbox's URLs and tokens come from the environment (``Sandbox.env()``); the score rows of RUN_ID are
already in the store. The test kills this process with SIGKILL while it writes.
"""

from __future__ import annotations

import os
import sys
from datetime import datetime

from store.db import make_engine
from tests.writeback.helpers import chaos_config, clients_for, credentials_from_env, limits_for
from writeback.apply import apply_plan
from writeback.plan import build_plan


def main(database_url: str, run_id: str, at: str, batch_size: str) -> int:
    engine = make_engine(database_url)
    clients = clients_for(credentials_from_env(os.environ), limits_for(write_batch_size=int(batch_size)))
    plan = build_plan(engine, chaos_config(), run_id=run_id, crms=["salesforce", "hubspot"],
                      now=datetime.fromisoformat(at))
    apply_plan(engine, plan, clients=clients, run_id=run_id)
    return 0


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:5]))
