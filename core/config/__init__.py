"""The YAML configuration admins edit, as pydantic models, and its loader (``load_config``).

Each section has its own module; the loader reports every problem as ``file:line dotted.path: message``.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from core.config.base import StrictModel
from core.config.runtime import LimitsConfig, ObservabilityConfig, ScheduleConfig
from core.config.scoring import ScoringConfig
from core.config.sources import SourcesConfig
from core.config.writeback import WritebackConfig


class AgentConfig(StrictModel):
    """The whole configuration file."""

    version: Literal[1] = Field(description="The configuration format's version; always 1 for now.")
    sources: SourcesConfig = SourcesConfig()
    scoring: ScoringConfig = ScoringConfig()
    writeback: WritebackConfig = WritebackConfig()
    schedule: ScheduleConfig = ScheduleConfig()
    limits: LimitsConfig = LimitsConfig()
    observability: ObservabilityConfig = ObservabilityConfig()


__all__ = ["AgentConfig"]
