"""`kinherit plan`: will reusing a smaller model save compute on this run, and how? Predicted, not trained.

    from kinherit.plan import plan
    result = plan("configs/staged.yaml", have=["runs/small/model"])
    result.rows[0]        # the recommendation; result.why says why

Every recipe (`plan.recipes`) gets its FLOPs and, from the reuse law fitted to kinherit's own measurements
(`plan.law`, reuse_law.json), a predicted loss difference against scratch at the configured size on the same tokens
and a predicted FLOPs saving, each a 90% prediction interval, flagged where the setting lies outside the measured
range. Predictions are relative to scratch on the same data: the loss level itself depends on the corpus.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kinherit.config import RunConfig, load_config, read_yaml
from kinherit.errors import KinheritError
from kinherit.plan import recipes
from kinherit.plan.have import read_existing
from kinherit.plan.law import ReuseLaw, load_law

__all__ = ["Plan", "Row", "plan"]


@dataclass(frozen=True)
class Row:
    """One recipe's prediction: `loss_delta` and `saving` as (low, high) of the 90% interval (None: not measured),
    `extrapolation` the phrases saying how far outside the measured range it lies."""

    recipe: recipes.Recipe
    loss_delta: tuple[float, float] | None
    saving: tuple[float, float] | None
    saving_mid: float | None
    extrapolation: list[str]

    def as_json(self) -> dict[str, Any]:
        return {
            "recipe": self.recipe.name,
            "flops": self.recipe.flops,
            "loss_delta": None if self.loss_delta is None else list(self.loss_delta),
            "saving": None if self.saving is None else list(self.saving),
            "extrapolation": bool(self.extrapolation),
            "outside": self.extrapolation,
            "details": self.recipe.details,
            "law": self.recipe.law,
        }


@dataclass(frozen=True)
class Plan:
    """The rows, the recommended one first, and the one sentence saying why."""

    rows: list[Row]
    why: str
    target: recipes.Target
    law: ReuseLaw
    notes: list[str]


def load_target(config_path: str | Path) -> recipes.Target:
    """The configured run, refused (one line) when it has no model section, names a model folder instead of a
    shape, or trains on 0 tokens."""
    path = Path(config_path)
    if not path.is_file():
        raise KinheritError(f"config file {path} not found (in {Path.cwd()})")
    raw = read_yaml(path.read_text(), f"config file {path}") or {}
    if not isinstance(raw, dict) or not raw.get("model"):
        raise KinheritError(f"config file {path} has no model: section; give the model you want (family and sizes)")
    config = load_config(path)
    if config.model.from_ is not None:
        raise KinheritError(
            f"config file {path}: model.from names a trained model; plan the shape you want (model.family and "
            "sizes) and pass the trained model with --have"
        )
    args = config.train_args
    steps = args["max_steps"]
    step_tokens = args["per_device_train_batch_size"] * args.get("gradient_accumulation_steps", 1)
    step_tokens *= config.data.seq_len
    if steps <= 0:
        raise KinheritError(f"config file {path}: train.max_steps {steps} is a budget of 0 tokens; set train.max_steps")
    return recipes.Target(config, final_model(config), vocab_size(config), steps, step_tokens)


def final_model(config: RunConfig) -> Any:
    """The model the run ends with: the `model:` section with every growth stage's sizes applied."""
    model = config.model
    for stage in config.growth:
        model = model.model_copy(update={k: getattr(stage, k) for k in recipes.SIZE_KEYS if getattr(stage, k)})
    return model


def vocab_size(config: RunConfig) -> int:
    """The config's vocabulary: its tokenizer folder's size, else train_vocab_size."""
    tokenizer = config.data.tokenizer
    if tokenizer.path is None:
        return tokenizer.train_vocab_size
    from kinherit.hf_folder import find_tokenizer

    found = find_tokenizer(tokenizer.path)
    if found is None:
        raise KinheritError(f"data.tokenizer.path {tokenizer.path} holds no tokenizer")
    return len(found)


MEASURED_FAMILY = "llama"
"""The family of every measurement behind the law (the benches build llamas; upcycling: llama → mixtral)."""


def predict(recipe: recipes.Recipe, law: ReuseLaw, family: str) -> Row:
    """A recipe's row: scratch is 0 by definition; a recipe whose law is missing has no prediction; a target of
    another family than the measured one is an extrapolation."""
    method = law.get(recipe.law) if recipe.law else None
    if recipe.law is None:
        return Row(recipe, (0.0, 0.0), (0.0, 0.0), 0.0, [])
    if method is None:
        return Row(recipe, None, None, None, [])
    setting = dict(recipe.setting)
    notes = [] if family == MEASURED_FAMILY else [f"family {family}: every measurement is of {MEASURED_FAMILY}"]
    for fit in (f for f in (method.saving, method.loss_delta) if f is not None):
        if "base_tau" in fit.columns and setting.get("base_tau") is None:
            low, high = fit.range["base_tau"]
            setting["base_tau"] = (low * high) ** 0.5
            notes.append("τ_base unknown (no run record): taken at the measured range's middle")
    delta = method.loss_delta.predict(setting) if method.loss_delta else None
    saving = method.saving.predict(setting) if method.saving else None
    return Row(
        recipe,
        None if delta is None else (delta[0], delta[2]),
        None if saving is None else (min(saving[0], 1.0), min(saving[2], 1.0)),  # a saving is at most all of it
        None if saving is None else min(saving[1], 1.0),
        list(dict.fromkeys(notes + method.outside(setting))),
    )


def plan(config: str | Path, have: list[str] | tuple[str, ...] = (), law: str | Path | None = None) -> Plan:
    """Every recipe for the run in `config`, reusing the models in `have` (HF folders), predicted by `law`
    (default: the shipped reuse_law.json); the recommendation first."""
    target = load_target(config)
    tokenizer_path = target.config.data.tokenizer.path
    existing = [read_existing(h, target.model.family, target.vocab, tokenizer_path) for h in have]
    reuse = load_law(law)
    built = [
        recipes.scratch(target),
        recipes.compute_optimal(target),
        recipes.staged(target),
        recipes.staged_width_depth(target),
    ]
    notes = [] if existing else ["grow, KI and dense → MoE need an existing model: pass it with --have DIR"]
    for model in existing:
        built += [recipes.grow_from(model, target), recipes.ki_from(model, target), recipes.upcycle_from(model, target)]
    rows = [predict(r, reuse, target.model.family) for r in built if r is not None]
    best = max(
        (r for r in rows if r.saving is not None and r.saving[0] > 0 and r.recipe.law),
        key=lambda r: r.saving_mid,
        default=None,
    )
    if best is None:
        best = rows[0]
        why = (
            "nothing beats scratch: no recipe's predicted saving interval lies wholly above 0, so train the configured "
            "model from scratch"
        )
    else:
        why = (
            f"its predicted saving, {best.saving_mid:.0%} [{best.saving[0]:.0%}, {best.saving[1]:.0%}], is the "
            "largest whose whole interval lies above 0"
            + (f" (an extrapolation: {'; '.join(best.extrapolation)})" if best.extrapolation else "")
        )
    return Plan([best, *(r for r in rows if r is not best)], why, target, reuse, notes)
