"""The blast-radius guard: a run that would change too much at once stops before writing and says why."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from core.config.writeback import GuardConfig


@dataclass(frozen=True)
class GuardOutcome:
    """What the guard saw and decided. ``stopped`` is True when the plan must not be applied without force."""

    accounts_scored: int
    band_changes: int
    records_to_write: int
    band_change_share: float  # 0-1
    stopped: bool
    reason: str | None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_blast_radius(
    config: GuardConfig, *, accounts_scored: int, band_changes: int, records_to_write: int
) -> GuardOutcome:
    """Stop when more than ``max_band_change_share`` of the scored accounts change band (once at least
    ``min_accounts`` were scored), or when more than ``max_records`` records would be written."""
    share = band_changes / accounts_scored if accounts_scored else 0.0
    reasons: list[str] = []
    if accounts_scored >= config.min_accounts and share > config.max_band_change_share:
        reasons.append(
            f"{band_changes} of {accounts_scored} accounts ({share:.0%}) would change band, more than the "
            f"{config.max_band_change_share:.0%} allowed by writeback.guard.max_band_change_share"
        )
    if records_to_write > config.max_records:
        reasons.append(
            f"{records_to_write} records would be written, more than the {config.max_records} allowed by "
            "writeback.guard.max_records"
        )
    reason = None
    if reasons:
        reason = "; ".join(reasons) + ". Check the scoring change, then re-run with --force to write anyway."
    return GuardOutcome(
        accounts_scored=accounts_scored,
        band_changes=band_changes,
        records_to_write=records_to_write,
        band_change_share=round(share, 4),
        stopped=bool(reasons),
        reason=reason,
    )
