"""What `kinherit plan` prints (`table`) and writes (`write_config`: the recommendation as a pretrain config)."""

from __future__ import annotations

from pathlib import Path

import yaml

from kinherit.config import validate_config
from kinherit.io import atomic_file
from kinherit.plan import Plan, Row


def _interval(value: tuple[float, float] | None, pct: bool) -> str:
    if value is None:
        return "not measured"
    low, high = value
    return f"[{low:+.0%}, {high:+.0%}]" if pct else f"[{low:+.3f}, {high:+.3f}]"


def _line(row: Row, mark: str) -> str:
    if row.recipe.law is None:
        where = "the reference: 0 by definition"
    elif row.saving is None and row.loss_delta is None:
        where = "no measurement of this recipe in the law"
    elif row.extrapolation:
        where = "extrapolation: " + "; ".join(row.extrapolation)
    else:
        where = "inside the measured range"
    return (
        f"{mark} {row.recipe.name}\n"
        f"    {row.recipe.details}\n"
        f"    FLOPs {row.recipe.flops:.3g}   Δ loss vs scratch {_interval(row.loss_delta, False)}   "
        f"saving {_interval(row.saving, True)}   ({where})"
    )


def table(result: Plan) -> str:
    """The plan as text: the budget, then one block per recipe, the recommendation first with why."""
    t = result.target
    lines = [
        f"{t.model.family} {t.model.hidden_size}×{t.model.num_layers}, {t.tokens:,} tokens ({t.steps:,} steps × "
        f"{t.step_tokens:,}); predictions: 90% intervals of {result.law.path}, relative to scratch on the same data",
        f"recommended: {result.rows[0].recipe.name}: {result.why}",
        "",
        _line(result.rows[0], "*"),
        *(_line(row, "-") for row in result.rows[1:]),
        *result.notes,
    ]
    return "\n".join(lines)


def write_config(result: Plan, out: Path) -> None:
    """The recommended recipe as a ready pretrain config (validated), written atomically, with the commands to run
    before it as comments."""
    recipe = result.rows[0].recipe
    validate_config(recipe.config)
    header = [f"# kinherit plan: {recipe.name} ({recipe.details})"]
    header += [f"# first: {command}" for command in recipe.before]
    with atomic_file(out) as handle:
        handle.write("\n".join(header) + "\n" + yaml.safe_dump(recipe.config, sort_keys=False))
