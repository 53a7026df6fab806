"""Streaming growth (`kinherit grow --stream`): grow a model folder tensor by tensor, from disk to disk.

The source is read one tensor at a time (`shards.FolderTensors`, any number of safetensors shards), every target
tensor is grown by the same `surgery.grow_state` as in memory (in fp32, then stored in the source's dtype) and
written straight into the shard being built (`shards.ShardWriter`). The noise scales are resolved first by one
more pass over the grown tensors (`surgery.resolve_noise`, which keeps one number per tensor). Memory therefore
holds one target tensor, its fp32 work copies and its noise, not the two models: the weights are those of the
in-memory `grow_folder`, cast to the source's dtype (bit-identical for fp32 sources).

Verification runs the source and the grown model on the same held batch with their weights on disk, module by
module (`offload.offloaded`): the outputs of the loaded models, weights of one module in memory at a time. The
weights are read as fp32, so the only deviation is the rounding of the stored grown weights: none in fp32
(tolerance `verify.EXACT_TOLERANCE`); in bf16/fp16 the noise no longer cancels exactly once each copy is rounded,
each weight carrying a relative error up to the format's unit roundoff u (2⁻⁸ for bf16, 2⁻¹¹ for fp16), and the
relative output deviation is held to u.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch
from transformers.models.auto.configuration_auto import CONFIG_MAPPING

from kinherit.errors import KinheritError
from kinherit.grow.api import GrowthNotExact, _check_folders, _params, _report, meta_model
from kinherit.grow.offload import offloaded, stored_names
from kinherit.grow.options import GrowthOptions
from kinherit.grow.output import staged_outputs
from kinherit.grow.plan import make_plan
from kinherit.grow.shards import FolderTensors, ShardWriter
from kinherit.grow.surgery import grow_state, resolve_noise
from kinherit.grow.verify import EXACT_TOLERANCE, GrowthReport, Verifier
from kinherit.hf_folder import TOKENIZER_FILES, find_tokenizer
from kinherit.io import write_json

DEFAULT_SHARD_BYTES = 2 * 10**9
"""Largest output shard (bytes) unless `max_shard_bytes` says otherwise (`kinherit grow --max-shard-size`, the
same default); memory does not depend on it."""
TOLERANCE = {torch.float32: EXACT_TOLERANCE, torch.bfloat16: 2.0**-5, torch.float16: 2.0**-8}
"""The relative deviation an exact operator is held to, by the dtype the grown weights are stored in."""


def grow_streaming(
    src: str | os.PathLike,
    out: str | os.PathLike,
    options: GrowthOptions | dict | None = None,
    *,
    overwrite: bool = False,
    max_shard_bytes: int = DEFAULT_SHARD_BYTES,
    **kwargs,
) -> GrowthReport:
    """`grow_folder` from disk to disk: the same options, OUT_DIR rules, outputs (config, safetensors shards with an
    index when there are several, tokenizer files, growth.json) and `GrowthNotExact`, with the weights stored in
    the source's dtype and verified module by module. Dense models only (no mixture of experts)."""
    src, out = Path(src), Path(out)
    options = GrowthOptions.of(options, **kwargs)
    if max_shard_bytes <= 0:
        raise KinheritError(f"the largest shard must be positive, got {max_shard_bytes} bytes (--max-shard-size GB)")
    config, head = _check_folders(src, out, overwrite)
    if options.num_experts is not None or getattr(config, "num_experts_per_tok", None) is not None:
        raise KinheritError(
            "--stream grows dense models only (transformers stores experts per expert on disk, not as "
            "the model holds them); drop --stream to grow a mixture of experts in memory"
        )
    plan = make_plan(config, options, architecture=head.architecture)  # bad options fail before any weight is read
    source_model = meta_model(config.to_dict(), head.architecture)
    source = FolderTensors(src, "SRC_DIR", upcast=True, aliases=stored_names(source_model, src, "SRC_DIR"))
    dtype = _stored_dtype(source)
    target_model = meta_model(plan.output_config, plan.output_architecture)
    target = {k: tuple(v.shape) for k, v in target_model.state_dict().items()}
    plan = resolve_noise(plan, source)
    report = _report(plan, _params(source_model), _params(target_model))
    report.tolerance = TOLERANCE[dtype]
    with staged_outputs(out) as stage:
        writer, grown = ShardWriter(stage, max_shard_bytes), set()
        for key, x in grow_state(plan, source):
            if target.get(key) != tuple(x.shape):
                raise KinheritError(
                    f"grown tensor {key} {tuple(x.shape)} does not fit {plan.output_architecture} "
                    f"({target.get(key, 'no such tensor')})"
                )
            if not (plan.tied and key == head.tied[0]):  # a tied head is stored once, as its embedding
                writer.add(key, x.to(dtype) if x.is_floating_point() else x)
            grown.add(key)
        if grown != set(target):
            raise KinheritError(
                f"grown weights do not match {plan.output_architecture}: missing {sorted(set(target) - grown)[:5]}"
            )
        writer.finish()
        grown_config = CONFIG_MAPPING[plan.output_config["model_type"]].from_dict(plan.output_config)
        grown_config.dtype = dtype
        grown_config.save_pretrained(stage)
        for name in TOKENIZER_FILES:
            if (src / name).is_file():
                shutil.copy2(src / name, stage / name)
        verifier = Verifier(
            offloaded(src, head.architecture, config, "SRC_DIR"), plan, find_tokenizer(src), options.seed
        )
        report.comparisons += verifier.check(offloaded(stage, plan.output_architecture, grown_config), "streamed")
        if not report.passed:
            raise GrowthNotExact(report)  # the staging folder is removed; `out` stays as it was
        write_json(
            stage / "growth.json",
            {
                "source": str(src.resolve()),
                "options": options.model_dump(exclude_defaults=True),
                "stream": {"dtype": str(dtype).removeprefix("torch."), "max_shard_bytes": max_shard_bytes},
                "plan": plan.to_dict(),
                "report": report.to_dict(),
            },
        )
    return report


def _stored_dtype(source: FolderTensors) -> torch.dtype:
    """The one floating-point dtype of the source's tensors (the grown model is stored in it)."""
    dtypes = {source.dtype(k) for k in source if source.dtype(k).is_floating_point}
    if len(dtypes) != 1 or next(iter(dtypes)) not in TOLERANCE:
        raise KinheritError(
            f"--stream needs the source's floating-point tensors in one of fp32, bf16, fp16; found "
            f"{sorted(str(d) for d in dtypes)} (drop --stream to grow in fp32 in memory)"
        )
    return dtypes.pop()
