"""Python entry points: `grow(model, ...)` and `grow_folder(src, out, ...)`.

The grown model is built tensor by tensor into a model whose parameters live on the meta device and
are then *assigned* (not copied), so memory holds the source and one copy of the target.
"""

from __future__ import annotations

import ctypes
import gc
import os
import shutil
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

import torch
import transformers
from accelerate import init_empty_weights
from transformers import PreTrainedModel
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

from kinherit.arch import detect
from kinherit.errors import KinheritError
from kinherit.grow.options import GrowthOptions
from kinherit.grow.output import check_out_dir, staged_outputs
from kinherit.grow.plan import GrowthPlan, make_plan
from kinherit.grow.surgery import grow_state, resolve_noise
from kinherit.grow.verify import GrowthReport, Verifier
from kinherit.hf_folder import TOKENIZER_FILES, find_tokenizer, load_architecture, read_config, require_weights
from kinherit.io import write_json


def assemble_grown_model(plan: GrowthPlan, tensors: Iterable[tuple[str, torch.Tensor]]) -> PreTrainedModel:
    """Instantiate the target architecture on the meta device and assign the grown tensors."""
    config = CONFIG_MAPPING[plan.output_config["model_type"]].from_dict(plan.output_config)
    with init_empty_weights(include_buffers=False):
        model = getattr(transformers, plan.output_architecture)(config)
    state = dict(tensors)
    expected = model.state_dict()
    if set(state) != set(expected):
        missing, extra = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
        raise KinheritError(
            f"grown weights do not match {plan.output_architecture}: missing {missing[:5]}, extra {extra[:5]}"
        )
    for key, value in state.items():
        assert value.shape == expected[key].shape, (
            f"{key}: grown {tuple(value.shape)} != model {tuple(expected[key].shape)}"
        )
    model.load_state_dict(state, strict=True, assign=True)
    model.tie_weights()
    return model.eval()


class Growth(NamedTuple):
    """What `grow` returns: the grown model, the plan (for `replay`/`grow_map`) and the report."""

    model: PreTrainedModel
    plan: GrowthPlan
    report: GrowthReport


class GrowthNotExact(KinheritError):
    """An operator that claims exactness deviated beyond the tolerance; nothing was written."""

    def __init__(self, report: GrowthReport):
        super().__init__(
            f"the grown model deviates by {report.max_deviation:.2e} > {report.tolerance:.0e} from the source "
            f"(max |Δ| / max(1, max |output|)), "
            f"although {report.width} + {report.depth} claim exactness; nothing was written\n{report.table()}"
        )
        self.report = report


def grow(
    model: PreTrainedModel,
    options: GrowthOptions | dict | None = None,
    *,
    tokenizer=None,
    verify: bool = True,
    **kwargs,
) -> Growth:
    """Grow `model` (in memory, on any device and dtype; the grown model is fp32 on the CPU; width first, then
    depth) by `options` (a `GrowthOptions`, or its fields
    as keyword arguments: `grow(model, hidden_size=1024, num_layers=24)`) and, with `verify`, compare it with
    the source. The source model is not modified.

    `noise_db` is the SNR of the symmetry-breaking noise (None: off, and duplicated units never
    diverge). `num_experts` (with `experts_per_token`, the `router` init, optional `expert_noise_db` /
    `drop_upcycling`) then upcycles the grown dense model into a mixture of experts (`kinherit.grow.upcycle`).
    Returns `Growth(model, plan, report)`; it does not raise on a failed verification (`report.passed`
    says), `grow_folder` does. `sources.tensor_sources(plan)` maps every grown tensor to its source tensor and
    the unit maps of its axes."""
    options = GrowthOptions.of(options, **kwargs)
    plan = make_plan(model.config, options, architecture=type(model).__name__)
    state = {
        k: v.detach().to("cpu", torch.float32 if v.is_floating_point() else v.dtype)  # no copy when CPU fp32
        for k, v in model.state_dict().items()
    }
    plan = resolve_noise(plan, state)
    grown = assemble_grown_model(plan, grow_state(plan, state))
    report = _report(plan, _params(model), _params(grown))
    if verify:
        report.comparisons += Verifier(model, plan, tokenizer, options.seed).check(grown, "in-memory")
    return Growth(grown, plan, report)


def grow_folder(
    src: str | os.PathLike,
    out: str | os.PathLike,
    options: GrowthOptions | dict | None = None,
    *,
    overwrite: bool = False,
    **kwargs,
) -> GrowthReport:
    """Grow the HF model folder `src` into `out` (config, safetensors, tokenizer, growth.json),
    verifying the in-memory model and the reloaded folder. `options` as for `grow`. `stream.grow_streaming` does
    the same from disk to disk, without both models in memory.

    An `out` with files in it is refused unless `overwrite`; then only kinherit's outputs in it are
    replaced (`output.OWN_OUTPUTS`) and every other file is kept, in one atomic swap. Raises
    `GrowthNotExact` (and leaves `out` untouched) when an operator that claims exactness deviates beyond
    the tolerance, in memory or after the reload."""
    src, out = Path(src), Path(out)
    options = GrowthOptions.of(options, **kwargs)
    config, head = _check_folders(src, out, overwrite)
    with warnings.catch_warnings():  # `grow` below warns (once) about the options
        warnings.simplefilter("ignore")
        make_plan(config, options, architecture=head.architecture)  # bad options fail before the weights load
    source = load_architecture(src, head.architecture, "SRC_DIR")
    tokenizer = find_tokenizer(src)
    grown, plan, report = grow(source, options, tokenizer=tokenizer, verify=False)
    verifier = Verifier(source, plan, tokenizer, options.seed)
    report.comparisons += verifier.check(grown, "in-memory")
    if not report.passed:
        raise GrowthNotExact(report)
    with staged_outputs(out) as stage:
        grown.save_pretrained(stage)
        del grown  # keep one copy of the target in memory
        _release_freed_memory()
        for name in TOKENIZER_FILES:
            if (src / name).is_file():
                shutil.copy2(src / name, stage / name)
        reloaded = load_architecture(stage, plan.output_architecture)
        report.comparisons += verifier.check(reloaded, "reloaded")
        if not report.passed:
            raise GrowthNotExact(report)  # the staging folder is removed; `out` stays as it was
        write_json(
            stage / "growth.json",
            {
                "source": str(src.resolve()),
                "options": options.model_dump(exclude_defaults=True),
                "plan": plan.to_dict(),
                "report": report.to_dict(),
            },
        )
    return report


def plan_folder(
    src: str | os.PathLike,
    out: str | os.PathLike | None = None,
    options: GrowthOptions | dict | None = None,
    *,
    overwrite: bool = False,
    **kwargs,
) -> tuple[GrowthPlan, GrowthReport]:
    """A dry run of `grow_folder`: the plan and a report of the shapes and parameter counts (no comparisons),
    from `src`'s config alone (no weights are read; the models are built on the meta device). With `out`,
    the same OUT_DIR check as `grow_folder`. Writes nothing."""
    src = Path(src)
    options = GrowthOptions.of(options, **kwargs)
    config, head = _check_folders(src, Path(out) if out is not None else None, overwrite)
    plan = make_plan(config, options, architecture=head.architecture)
    source_params = _meta_params(config.to_dict(), head.architecture)
    return plan, _report(plan, source_params, _meta_params(plan.output_config, plan.output_architecture))


def _check_folders(src: Path, out: Path | None, overwrite: bool):
    """SRC_DIR's config and head after the checks that need no weights: a model folder, OUT_DIR ≠ SRC_DIR and
    empty unless `overwrite`."""
    config = read_config(src, "SRC_DIR")
    require_weights(src, "SRC_DIR")
    _, head = detect(config)
    if out is not None:
        if out.resolve() == src.resolve():
            raise KinheritError("OUT_DIR must differ from SRC_DIR")
        check_out_dir(out, overwrite)
    return config, head


def meta_model(config: dict, architecture: str) -> PreTrainedModel:
    """`architecture` built from `config` on the meta device (no memory, no weights), tied weights tied."""
    with init_empty_weights(include_buffers=False):
        model = getattr(transformers, architecture)(CONFIG_MAPPING[config["model_type"]].from_dict(config))
    model.tie_weights()
    return model


def _meta_params(config: dict, architecture: str) -> int:
    """Parameter count of `architecture` built from `config` on the meta device (a tied head counts once)."""
    return _params(meta_model(config, architecture))


def _release_freed_memory() -> None:
    """Return freed heap pages to the OS (glibc keeps them otherwise, and the reload would stack a
    second target-sized allocation on top)."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


def _params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _report(plan: GrowthPlan, source_params: int, target_params: int) -> GrowthReport:
    return GrowthReport(
        family=plan.family,
        architecture=plan.architecture,
        width=plan.width,
        depth=plan.depth,
        noise_db=plan.noise_db,
        source_shape=plan.source_shape.as_dict(),
        target_shape=plan.target_shape.as_dict(),
        source_params=source_params,
        target_params=target_params,
        exact_claimed=plan.exact_claimed,
        upcycle=plan.upcycle.describe() if plan.upcycle else None,
    )
