"""What every CLI command gets: settings, the configuration and the store, loaded on first use."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from rich.console import Console
from sqlalchemy import Engine

from agent.settings import Settings
from core.config import AgentConfig
from core.redaction import redact


@dataclass
class CommandContext:
    """Shared state of one CLI invocation.

    Commands return an exit code: 0 ok, 1 finished with errors, 2 bad usage or configuration.
    """

    settings: Settings
    config_path: Path
    database_url: str
    as_json: bool = False
    verbose: bool = False
    console: Console = field(default_factory=lambda: Console(stderr=False, highlight=False))
    err_console: Console = field(default_factory=lambda: Console(stderr=True, highlight=False))

    @cached_property
    def config(self) -> AgentConfig:
        """The validated configuration (raises ConfigError naming file:line for every problem)."""
        from core.config.loader import load_config

        return load_config(self.config_path)

    @cached_property
    def engine(self) -> Engine:
        """The store, migrated to the newest schema on first use."""
        from store.db import make_engine
        from store.migrate import upgrade

        engine = make_engine(self.database_url)
        upgrade(engine)
        return engine

    @property
    def interactive(self) -> bool:
        """True on a terminal: rich progress bars; plain lines otherwise."""
        return sys.stdout.isatty() and not self.as_json

    def emit_json(self, payload: Any) -> None:
        """Print machine-readable output, secrets redacted."""
        sys.stdout.write(redact(json.dumps(payload, indent=2, default=str, ensure_ascii=False)) + "\n")
        sys.stdout.flush()
