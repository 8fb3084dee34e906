"""The printed table of a run's gain predictors (results.json -> "predictors"), beside the decomposition table."""

from __future__ import annotations

from typing import Any


def format_predictors(block: dict[str, Any]) -> str:
    """One row per predictor: its value (per target when there are several), the direction its paper
    claims (+: larger value, larger gain) and what it reads."""
    per_target = block.get("per_target") or {}
    targets = list(per_target) if len(per_target) > 1 else []
    names = list(block.get("values") or {})
    if not names:
        return "(no predictors)"

    def fmt(v: Any) -> str:
        return "-" if v is None else f"{v:.4g}"

    header = ["predictor", "value", *targets, "dir", "reads"]
    rows = [[p, fmt(block["values"][p]), *(fmt(per_target[t].get(p)) for t in targets),
             "+" if block["directions"].get(p, 1) > 0 else "-", block["reads"].get(p, "")] for p in names]
    width = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header) - 1)]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(r[:-1], width)) + "  " + r[-1] for r in [header, *rows]]
    overlap = (block.get("details") or {}).get("subspace_overlap") or {}
    if overlap.get("principal_angles_deg"):
        angles = overlap["principal_angles_deg"]
        lines.append(f"effective ranks (weak, strong) at {overlap['variance_share']:.0%} of the variance: "
                     f"{overlap['effective_rank_weak']}, {overlap['effective_rank_strong']}; principal angles "
                     f"{min(angles):.1f}..{max(angles):.1f} deg")
    return "\n".join(["gain predictors (dir: the sign its paper predicts for the gain)", *lines])
