"""The base of every configuration model: strict (unknown keys are errors) and immutable."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Unknown keys are errors; values cannot change after loading."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
