"""The existing models of `bench.where_users_train`'s reuse methods: `grow:HxL` (one-shot growth) and `ki:HxL`
(knowledge inheritance) from a smaller model HxL that exists before the target's run.

An existing model is a scratch run trained once, seed 1000 (never a reported or tune seed), for --source-tokens-
per-param tokens per non-embedding parameter of the target, in OUT/sources/HxL; a grow: source is grown once into
the target's shape with kinherit's defaults (OUT/sources/HxL-grown-TARGET), verified against the source's logits.
Both are reused when finished. A method that is not a staged schedule or one of these, or a source that cannot grow
into the target, is refused in one line (exit 2) before any training.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bench.progressive import schedule
from bench.protocol import (
    HEAD_DIM,
    budget_steps,
    final_loss,
    model_at,
    model_param_counts,
    parse_size,
    tokens_per_step,
    train_once,
)
from kinherit.arch.catalog import FAMILIES
from kinherit.config import ModelConfig, read_recorded_config
from kinherit.errors import KinheritError
from kinherit.grow import GrowthOptions, grow_folder, make_plan
from kinherit.io import read_json
from kinherit.metrics.runs import load_run

SOURCE_SEED = 1000
"""The seed of every existing model (`grow:`/`ki:` sources): never a reported or tune seed."""
REUSE = {"grow": "one-shot growth", "ki": "knowledge inheritance"}
"""The methods that reuse an existing smaller model, written `KIND:HxL`."""
ALL_COMPUTE = " (all compute)"
"""The suffix of a grow:/ki: method's row with its source's training charged."""
SHAPE_KEYS = ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "intermediate_size")


def refuse(message: str) -> None:
    """Bad input: one line on stderr and exit status 2, before any training."""
    print(f"error: {message}", file=sys.stderr)
    raise SystemExit(2)


def reuse_of(method: str) -> tuple[str, str] | None:
    """`grow:HxL` / `ki:HxL` → (kind, source size); None for any other method (a staged schedule)."""
    kind, sep, size = method.partition(":")
    return (kind, size) if sep else None


def source_dir(out: Path, size: str) -> Path:
    """The existing model HxL's run folder."""
    return out / "sources" / size


def grown_dir(out: Path, size: str, target: str) -> Path:
    """HxL grown into the target's shape (`kinherit.grow.grow_folder`'s output)."""
    return out / "sources" / f"{size}-grown-{target}"


def _hf_config(size: str, vocab: int, seq_len: int):  # noqa: ANN202
    """The transformers config of the llama `HxL` (`model_at`), as a run builds it."""
    sizes = ModelConfig.model_validate(model_at(*parse_size(size)))
    return FAMILIES.lookup("llama").build_config(sizes, vocab, sizes.positions(seq_len))


def check_methods(methods: list[str], target: str, data: dict[str, Any]) -> None:
    """Refuse (`refuse`) an unknown method, or a grow:/ki: source that is no smaller model of heads of 16 or that
    kinherit's growth cannot turn into exactly the target's shape; nothing is trained."""
    hidden, layers = parse_size(target)
    vocab, seq_len = data["tokenizer"]["train_vocab_size"], data["seq_len"]
    for method in methods:
        reuse = reuse_of(method)
        if reuse is None:
            try:
                schedule(method, hidden, layers, 100)
            except SystemExit as error:
                refuse(str(error.code))
            continue
        kind, size = reuse
        if kind not in REUSE:
            refuse(f"unknown method {method!r}: a reuse method is grow:HxL or ki:HxL (HxL the existing model)")
        try:
            h, n = parse_size(size)
        except ValueError:
            refuse(f"method {method!r}: write {kind}:HxL, e.g. {kind}:16x4")
        if h < HEAD_DIM or h % HEAD_DIM:
            refuse(f"method {method!r}: the source's hidden size {h} is not a multiple of the heads' {HEAD_DIM}")
        if h > hidden or n > layers or (h, n) == (hidden, layers):
            refuse(f"method {method!r}: the source {size} is not smaller than the target {target}")
        if kind == "grow":
            try:
                plan = make_plan(
                    _hf_config(size, vocab, seq_len),
                    GrowthOptions(hidden_size=hidden, num_layers=layers),
                    architecture="LlamaForCausalLM",
                )
            except KinheritError as error:
                refuse(f"method {method!r}: {size} cannot grow into {target}: {error}")
            want = _hf_config(target, vocab, seq_len).to_dict()
            got = {key: plan.output_config.get(key) for key in SHAPE_KEYS}
            if got != {key: want.get(key) for key in SHAPE_KEYS}:
                refuse(f"method {method!r}: {size} grows into {got}, not the target {target}'s shape")


def check_source(folder: Path, size: str, steps: int, args: argparse.Namespace) -> None:
    """Refuse an existing source folder trained otherwise than this run asks (it would be reused as is)."""
    recorded = folder / "config.resolved.yaml"
    if not recorded.is_file():
        return
    tree = read_recorded_config(recorded)
    train, want = tree.get("train") or {}, {"max_steps": steps, "learning_rate": args.source_lr, "seed": SOURCE_SEED}
    differ = {key: train.get(key) for key, value in want.items() if train.get(key) != value}
    if differ or (tree.get("model") or {}).get("hidden_size") != parse_size(size)[0]:
        refuse(
            f"{folder} holds a source trained with {differ or tree.get('model')}, not {want}: pass its "
            "--source-tokens-per-param / --source-lr, or move it away"
        )


def source_steps(target: str, args: argparse.Namespace) -> int:
    """The sources' steps: --source-tokens-per-param tokens per non-embedding parameter of the target."""
    vocab, seq_len = args.data["tokenizer"]["train_vocab_size"], args.data["seq_len"]
    n = model_param_counts(model_at(*parse_size(target)), vocab, seq_len)["non_embedding"]
    step_tokens = tokens_per_step({"per_device_train_batch_size": args.batch}, args.data)
    return budget_steps(n, step_tokens, tokens_per_param=args.source_tokens_per_param)


def prepare_sources(methods: list[str], target: str, args: argparse.Namespace) -> dict[str, Any]:
    """Train each grow:/ki: source once (seed 1000, reused when finished) and grow each grow: source into the target
    (reused when its growth.json exists); per source size: its steps, LR, FLOPs, final loss and each growth's
    verification (max |Δ| of the logits against the source's, relative to their scale, and whether it passed)."""
    out, steps = Path(args.out), source_steps(target, args)
    pairs = [reuse for reuse in map(reuse_of, methods) if reuse is not None]
    grown = {size for kind, size in pairs if kind == "grow"}
    for size in dict.fromkeys(size for _, size in pairs):
        check_source(source_dir(out, size), size, steps, args)
    sources = {}
    for size in dict.fromkeys(size for _, size in pairs):
        folder = train_once(
            source_dir(out, size),
            model_at(*parse_size(size)),
            steps,
            args.source_lr,
            SOURCE_SEED,
            steps,
            args.batch,
            args.scheduler,
            args.data,
        )
        sources[size] = {
            "folder": str(folder),
            "steps": steps,
            "tokens_per_param_of_target": args.source_tokens_per_param,
            "lr": args.source_lr,
            "flops": float(load_run(folder).evals[-1]["flops"]),
            "loss": final_loss(folder),
        }
        if size in grown:
            into = grown_dir(out, size, target)
            if not (into / "growth.json").is_file():
                hidden, layers = parse_size(target)
                grow_folder(folder / "model", into, hidden_size=hidden, num_layers=layers)
            report = read_json(into / "growth.json")["report"]
            sources[size]["grown"] = {
                "folder": str(into),
                "max_deviation": report["max_deviation"],
                "tolerance": report["tolerance"],
                "passed": report["passed"],
            }
            print(f"{size} grown into {target}: max |Δ logits| {report['max_deviation']:.1e}", flush=True)
    return sources


def own_tokens_per_param(size: str, result: dict[str, Any]) -> float:
    """The existing model HxL's training tokens per its own non-embedding parameter (a where_users_train result's
    `sources`): the τ_base of the reuse law."""
    data = result["args"]["data"]
    own = model_param_counts(model_at(*parse_size(size)), data["tokenizer"]["train_vocab_size"], data["seq_len"])
    return result["sources"][size]["steps"] * result["tokens_per_step"] / own["non_embedding"]


def source_line(size: str, source: dict[str, Any], result: dict[str, Any]) -> str:
    """The header line of an existing model: how it was trained, its FLOPs and loss, and its growth's check."""
    counts = result["params"]
    tokens = source["steps"] * result["tokens_per_step"]
    line = (
        f"Existing model {size} (seed {SOURCE_SEED}): {source['steps']:,} steps, {tokens:,} tokens (τ = "
        f"{tokens / counts['non_embedding']:.3g} of the target's non-embedding parameters, "
        f"{own_tokens_per_param(size, result):.3g} of its own), peak LR {source['lr']:g}, "
        f"{result['args']['scheduler']}; "
        f"{source['flops']:.3g} FLOPs, final loss {source['loss']:.3f}"
    )
    if "grown" in source:
        g = source["grown"]
        line += (
            f"; grown into {result['target']} with kinherit's defaults (clone, identity, 0 dB noise): max |Δ logits| "
            f"{g['max_deviation']:.1e} vs the source's ({'passed' if g['passed'] else 'FAILED'}, tolerance "
            f"{g['tolerance']:.0e})"
        )
    return line + "."
