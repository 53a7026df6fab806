"""How much of a grown model's added width is in use: the drift between the copies of each duplicated unit.

Growth by duplication gives every copy of source unit i the same *producer* parameters (Linear rows,
embedding columns, biases, norm scales: everything that computes the unit's activation). A producer
row also reads other grown spaces; folding those input axes (summing the columns of the copies of
each input unit) gives the weights the unit applies to source-shaped inputs. Copies whose folded
producer parameters are identical compute identical activations, so they add no width. For a group
C of copies with folded producer vectors v_c (concatenated over tensors; per layer for layer-local
spaces):

    divergence(C) = sqrt(mean_c ||v_c − v̄||²) / ||v̄||,     v̄ = mean_c v_c

It is 0 right after growth, with or without noise (the noise on the copies of an input unit sums to
zero, so it folds away), and stays exactly 0 without symmetry breaking: identical copies get
identical gradients, and AdamW, weight decay and clipping keep them identical. It grows once the
noise has steered the copies' gradients apart.

Upcycled experts (`kinherit.grow.upcycle`) are copies too: per layer, with θ_e the concatenated
weights of expert e (fused gate/up and down), the pairwise divergence is

    d(i, j) = ||θ_i − θ_j|| / ½(||θ_i|| + ||θ_j||)

0 for every pair right after upcycling; a pair stays at 0 while both experts receive the same
tokens with the same routing weights (a zero router that no balancing loss moves, or k = E).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import yaml

from kinherit.arch import bind
from kinherit.arch.spec import TensorSpec
from kinherit.errors import KinheritError
from kinherit.grow.interleave import segments_layout
from kinherit.grow.maps import UnitMap
from kinherit.grow.plan import GrowthPlan, load_plan

IDENTICAL = 1e-6  # relative divergence at or below which a group counts as still identical (fp32)


@dataclass(frozen=True)
class SpaceDivergence:
    """Divergence statistics of one space over all its duplicated groups."""

    space: str
    groups: int  # duplicated (source unit, layer) groups
    identical: int  # groups whose copies are still identical
    median: float
    minimum: float

    @property
    def in_use(self) -> float:
        """Share of duplicated groups whose copies have drifted apart."""
        return 1.0 - self.identical / self.groups if self.groups else 1.0


@dataclass(frozen=True)
class ExpertDivergence:
    """Pairwise divergence of the experts of one upcycled layer."""

    layer: str  # the MoE block's key prefix, e.g. model.layers.0.mlp.
    experts: int
    pairs: int
    identical_pairs: int
    copies: int  # experts that are still an identical copy of a lower-numbered expert
    median: float
    minimum: float


@dataclass(frozen=True)
class DivergenceReport:
    spaces: tuple[SpaceDivergence, ...]
    experts: tuple[ExpertDivergence, ...] = ()
    noise_db: float | None = None  # the growth's symmetry-breaking noise (None: off)

    @property
    def all_identical(self) -> bool:
        return all(s.identical == s.groups for s in self.spaces) and all(
            e.copies == e.experts - 1 for e in self.experts
        )

    @property
    def median(self) -> float:
        """The smallest per-space median: the space that diverged least."""
        return min((s.median for s in self.spaces), default=float("nan"))

    def to_dict(self) -> dict[str, Any]:
        return {
            "spaces": [{**asdict(s), "in_use": s.in_use} for s in self.spaces],
            "experts": [asdict(e) for e in self.experts],
        }

    def table(self) -> str:
        lines = []
        if self.spaces or not self.experts:
            lines.append(f"{'space':8}{'groups':>8}{'identical':>11}{'in use':>9}{'median':>11}{'min':>11}")
        for s in self.spaces:
            lines.append(
                f"{s.space:8}{s.groups:>8}{s.identical:>11}{s.in_use:>9.1%}{s.median:>11.2e}{s.minimum:>11.2e}"
            )
        if self.experts:
            lines.append(
                f"{'experts of':28}{'experts':>8}{'pairs':>7}{'identical':>11}{'copies':>8}{'median':>11}{'min':>11}"
            )
        for e in self.experts:
            lines.append(
                f"{e.layer:28}{e.experts:>8}{e.pairs:>7}{e.identical_pairs:>11}{e.copies:>8}{e.median:>11.2e}{e.minimum:>11.2e}"
            )
        if self.experts and all(e.copies == e.experts - 1 for e in self.experts):
            lines.append(
                "every expert is still an identical copy: the experts are not specialising (they get the same "
                "tokens with the same weights; upcycle with --router random)"
            )
        elif any(e.copies for e in self.experts):
            lines.append(
                "some experts are still identical copies: they get the same tokens with the same weights "
                "(a zero router that no balancing loss moves, or every expert selected)"
            )
        if self.spaces and all(s.identical == s.groups for s in self.spaces):
            if self.noise_db is None:
                lines.append(
                    "every duplicated unit is still an exact copy: the added width is not in use, and "
                    "without symmetry-breaking noise it never will be (grow with the default --noise-db)"
                )
            else:
                lines.append(
                    f"every duplicated unit is still an exact copy, as at initialisation: the growth's "
                    f"symmetry-breaking noise ({self.noise_db:g} dB) cancels on the copies, so they are exact "
                    "when grown and diverge in training (train the model, then check again)"
                )
        return "\n".join(lines)


def _producer_slices(spec: TensorSpec, space: str, sizes: dict[str, int]) -> list[tuple[int, int]]:
    """(axis, offset) of every producer/norm segment of `space` in a tensor of `spec`."""
    found = []
    for dim, axis in enumerate(spec.axes):
        if axis.kind not in ("out", "norm"):
            continue
        offset = 0
        for s in axis.spaces:
            if s == space:
                found.append((dim, offset))
            offset += sizes[s]
    return found


def fold_inputs(x: torch.Tensor, spec: TensorSpec, maps: dict[str, UnitMap], keep: int) -> torch.Tensor:
    """Sum the columns of the copies of every input unit, on every `in` axis except `keep`:
    the weights as seen by inputs that still repeat their source units (drawn units dropped)."""
    for dim, axis in enumerate(spec.axes):
        if axis.kind != "in" or dim == keep:
            continue
        pieces, offset = [], 0
        for space in axis.spaces:
            m = maps[space]
            seg = x.narrow(dim, offset, m.new).movedim(dim, -1)  # (..., new)
            folded = torch.zeros(*seg.shape[:-1], m.old, dtype=seg.dtype)
            folded.index_add_(-1, m.index[m.live], seg[..., m.live])
            pieces.append(folded.movedim(-1, dim))
            offset += m.new
        x = torch.cat(pieces, dim)
    return x


def copy_divergence(plan: GrowthPlan | dict | str | Path, state: dict[str, torch.Tensor]) -> DivergenceReport:
    """Divergence of the copies of every duplicated unit in `state` (a grown model's weights, possibly
    trained), using the unit maps of `plan` (a GrowthPlan, growth.json or grown folder)."""
    plan = load_plan(plan)
    experts: tuple[ExpertDivergence, ...] = ()
    if plan.upcycle is not None:
        experts = expert_divergence(state)
        state = {k: v for k, v in state.items() if not is_moe_key(k)}  # the rest is the dense growth's
    family, head = plan.family_spec()
    maps: dict[str, UnitMap] = plan.channel_maps()
    sizes = plan.target_shape.space_sizes()
    bound = bind(family.tensors(head.architecture), plan.target_shape, state, require_all=False)
    spaces = []
    for space, m in maps.items():
        groups = [i for i in range(m.old) if int(m.count[i]) > 1]
        if not groups:
            continue
        copies = [torch.nonzero(m.index == i).flatten() for i in groups]  # per group: (n_copies,)
        # vectors[(layer, group)] = list of (n_copies, k) blocks, concatenated below
        vectors: dict[tuple[int | None, int], list[torch.Tensor]] = {}
        for b in bound:
            x, spec = segments_layout(state[b.key].double(), b.spec, maps, grown=True)
            for dim, offset in _producer_slices(spec, space, sizes):
                seg = fold_inputs(x.narrow(dim, offset, m.new), spec, maps, keep=dim)
                seg = seg.movedim(dim, 0).reshape(m.new, -1)  # (new, rest)
                layer = b.layer if space != "hidden" else None  # the residual stream is shared by all layers
                for g, idx in enumerate(copies):
                    vectors.setdefault((layer, g), []).append(seg[idx])
        values = []
        for blocks in vectors.values():
            v = torch.cat(blocks, dim=1)  # (n_copies, k)
            mean = v.mean(0)
            spread = ((v - mean) ** 2).sum(1).mean().sqrt()
            values.append(float(spread / mean.norm().clamp_min(1e-30)))
        if values:
            t = torch.tensor(values)
            spaces.append(
                SpaceDivergence(space, len(values), int((t <= IDENTICAL).sum()), float(t.median()), float(t.min()))
            )
    return DivergenceReport(tuple(spaces), experts, plan.noise_db)


def expert_divergence(state: dict[str, torch.Tensor]) -> tuple[ExpertDivergence, ...]:
    """`d(i, j)` (module docstring) over the expert pairs of every layer with fused expert tensors (the layout
    the models hold; read a saved folder through `from_pretrained`, see `hf_folder.read_model_state`)."""
    layers = []
    for key in sorted(k for k in state if k.endswith(".experts.gate_up_proj")):
        prefix = key.removesuffix("experts.gate_up_proj")
        gate_up = state[key].double()  # (E, 2F, H)
        theta = torch.cat([gate_up.flatten(1), state[prefix + "experts.down_proj"].double().flatten(1)], 1)  # (E, P)
        n = theta.shape[0]
        norms = theta.norm(dim=1)
        diff = (theta[:, None, :] - theta[None, :, :]).norm(dim=-1)  # (E, E), exact 0 for identical experts
        d = diff / ((norms[:, None] + norms[None, :]) / 2).clamp_min(1e-30)
        i, j = torch.triu_indices(n, n, 1)
        pairs = d[i, j]
        same = d <= IDENTICAL
        copies = sum(bool(same[e, :e].any()) for e in range(n))
        layers.append(
            ExpertDivergence(
                prefix,
                n,
                len(pairs),
                int((pairs <= IDENTICAL).sum()),
                copies,
                float(pairs.median()),
                float(pairs.min()),
            )
        )
    return tuple(layers)


def is_moe_key(key: str) -> bool:
    """Tensors that exist only in the mixture of experts: experts, router, shared expert and its gate."""
    return any(tag in key for tag in (".experts.", ".mlp.gate.weight", ".shared_expert.", ".shared_expert_gate."))


def find_growth(model_dir: Path) -> Path:
    """growth.json of a grown folder, or of the grown folder a run started from (`model.from`)."""
    if (model_dir / "growth.json").is_file():
        return model_dir / "growth.json"
    config = model_dir.parent / "config.resolved.yaml"
    if config.is_file():
        start = ((yaml.safe_load(config.read_text()) or {}).get("model") or {}).get("from")
        if start and (Path(start) / "growth.json").is_file():
            return Path(start) / "growth.json"
    raise KinheritError(f"no growth.json found for {model_dir}: pass --growth PATH (the grown folder's growth.json)")
