"""The growth plan: target shape, unit maps, layer map and noise, everything needed to replay a
growth on other weights of the same source shape. Stored as `growth.json` in the grown folder.

The plan is immutable data: `make_plan` fixes everything but the noise scales, which depend on the
weights and are filled in once by `surgery.resolve_noise`. Replaying it lives in `reapply.py`.
"""

from __future__ import annotations

import json
import os
import random
import warnings
from dataclasses import dataclass
from typing import Any

from kinherit.arch import FAMILIES, FamilySpec, HeadSpec, Shape, detect, read_shape, write_shape
from kinherit.errors import KinheritError
from kinherit.grow.depth import DEPTH_OPERATORS
from kinherit.grow.maps import UnitMap
from kinherit.grow.options import GrowthOptions
from kinherit.grow.upcycle import UpcyclePlan, plan_upcycle
from kinherit.grow.width import WIDTH_OPERATORS

PLAN_VERSION = 1


@dataclass(frozen=True)
class GrowthPlan:
    family: str
    architecture: str
    source_config: dict[str, Any]
    target_config: dict[str, Any]
    source_shape: Shape
    target_shape: Shape
    width: str
    unit_maps: dict[str, list[int]]  # hidden, ffn (channels); heads, kv_heads (whole heads)
    depth: str
    layers: list[tuple[int, bool]]  # target layer j <- (source layer, zeroed residual-out)
    tied: bool
    exact_claimed: bool
    noise_db: float | None = None
    noise_seed: int = 0
    noise_std: dict[str, float] | None = None  # per noised target tensor; None until surgery.resolve_noise
    upcycle: UpcyclePlan | None = None  # dense -> mixture of experts after width/depth (kinherit.grow.upcycle)
    drawn_stats: dict[str, tuple[float, float]] | None = None  # (mean, std) per tensor producing drawn units

    @property
    def has_drawn_units(self) -> bool:
        """Some grown unit copies nothing (index −1, `--width zero`): its in-coming weights are drawn."""
        return any(i < 0 for m in self.unit_maps.values() for i in m)

    @property
    def output_architecture(self) -> str:
        """The class of the grown model: the source's, or the upcycled mixture of experts'."""
        return self.upcycle.architecture if self.upcycle else self.architecture

    @property
    def output_config(self) -> dict[str, Any]:
        """The grown model's config.json (`target_config` is the dense shape before upcycling)."""
        return self.upcycle.config if self.upcycle else self.target_config

    def family_spec(self) -> tuple[FamilySpec, HeadSpec]:
        family = FAMILIES[self.family]
        return family, family.head(self.architecture)

    def channel_maps(self) -> dict[str, UnitMap]:
        """Channel-level maps of the four growable spaces (heads expanded by head_dim)."""
        return self.channel_maps_of(self.source_shape, self.unit_maps)

    @staticmethod
    def channel_maps_of(src: Shape, unit_maps: dict[str, list[int]]) -> dict[str, UnitMap]:
        d = src.head_dim
        return {
            "hidden": UnitMap(src.hidden, unit_maps["hidden"]),
            "ffn": UnitMap(src.ffn, unit_maps["ffn"]),
            "q": UnitMap(src.heads, unit_maps["heads"]).per_channel(d),
            "kv": UnitMap(src.kv_heads, unit_maps["kv_heads"]).per_channel(d),
        }

    @property
    def duplicates_units(self) -> bool:
        """True when some grown unit is a copy of a source unit that another grown unit also copies."""
        return any(int(m.count.max()) > 1 for m in self.channel_maps().values())

    def describe_spaces(self) -> list[str]:
        """One line per space: source → target size and what the operator does there."""
        lines = []
        for space, m in (("hidden", "hidden"), ("ffn", "ffn"), ("heads", "heads"), ("kv-heads", "kv_heads")):
            index = self.unit_maps[m]
            old = self.source_shape.as_dict()[m]
            copies = sorted({index.count(i) for i in range(old)})
            drawn = index.count(-1)
            what = (
                "unchanged"
                if len(index) == old
                else ", ".join(
                    filter(
                        None,
                        [
                            f"copies ×{'/'.join(map(str, copies))}" if copies != [1] else "",
                            f"{drawn} drawn" if drawn else "",
                        ],
                    )
                )
            )
            lines.append(f"{space:10}{old:>6} → {len(index):<6}{self.width if len(index) != old else '':9}{what}")
        new_layers = sum(z for _, z in self.layers)
        layers = (
            "unchanged"
            if len(self.layers) == self.source_shape.layers
            else (f"{new_layers} new layers with zeroed residual outputs" if new_layers else "copies of trained layers")
        )
        lines.append(
            f"{'layers':10}{self.source_shape.layers:>6} → {len(self.layers):<6}"
            f"{self.depth if len(self.layers) != self.source_shape.layers else '':9}{layers}"
        )
        return lines

    def hidden_map(self) -> UnitMap:
        return UnitMap(self.source_shape.hidden, self.unit_maps["hidden"])

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": PLAN_VERSION,
            "family": self.family,
            "architecture": self.architecture,
            "source_shape": self.source_shape.as_dict(),
            "target_shape": self.target_shape.as_dict(),
            "width": {"operator": self.width, "unit_maps": self.unit_maps},
            "depth": {"operator": self.depth, "layers": [[s, z] for s, z in self.layers]},
            "tied_embeddings": self.tied,
            "exact_claimed": self.exact_claimed,
            "noise": None
            if self.noise_db is None
            else {"snr_db": self.noise_db, "seed": self.noise_seed, "std": self.noise_std or {}},
            "source_config": self.source_config,
            "target_config": self.target_config,
            "upcycle": self.upcycle.to_dict() if self.upcycle else None,
            "drawn_stats": self.drawn_stats,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> GrowthPlan:
        if data.get("version") != PLAN_VERSION:
            raise KinheritError(f"growth plan version {data.get('version')!r} is not {PLAN_VERSION}")
        if data["family"] not in FAMILIES:
            raise KinheritError(f"growth plan family {data['family']!r} is not supported here")
        noise = data["noise"] or {}
        return cls(
            family=data["family"],
            architecture=data["architecture"],
            source_config=data["source_config"],
            target_config=data["target_config"],
            source_shape=Shape(**data["source_shape"]),
            target_shape=Shape(**data["target_shape"]),
            width=data["width"]["operator"],
            unit_maps={k: list(v) for k, v in data["width"]["unit_maps"].items()},
            depth=data["depth"]["operator"],
            layers=[(int(s), bool(z)) for s, z in data["depth"]["layers"]],
            tied=bool(data["tied_embeddings"]),
            exact_claimed=bool(data["exact_claimed"]),
            noise_db=noise.get("snr_db"),
            noise_seed=int(noise.get("seed", 0)),
            noise_std=dict(noise["std"]) if "std" in noise else None,
            upcycle=UpcyclePlan.from_dict(data["upcycle"]) if data.get("upcycle") else None,
            drawn_stats={k: tuple(v) for k, v in data["drawn_stats"].items()} if data.get("drawn_stats") else None,
        )


def target_shape(
    family: FamilySpec,
    src: Shape,
    *,
    hidden_size: int | None = None,
    intermediate_size: int | None = None,
    num_heads: int | None = None,
    num_kv_heads: int | None = None,
    num_layers: int | None = None,
) -> Shape:
    """Fill in and validate the target shape. Defaults: heads grow with hidden (head_dim fixed),
    kv-heads keep the GQA group size, the FFN keeps its ratio to hidden, layers stay."""
    hidden = hidden_size if hidden_size is not None else src.hidden
    _not_smaller("--hidden-size", hidden, src.hidden)
    d = src.head_dim
    derived_head_dim = src.heads * d == src.hidden
    if num_heads is None:
        if derived_head_dim and hidden % d:
            raise KinheritError(f"--hidden-size {hidden} is not a multiple of head_dim {d}; pass --num-heads")
        num_heads = hidden // d if derived_head_dim else src.heads
    _not_smaller("--num-heads", num_heads, src.heads)
    if hidden % num_heads:  # transformers validates this even when head_dim is explicit
        explicit = "" if derived_head_dim else f" (transformers requires it even with the explicit head_dim {d})"
        raise KinheritError(f"--num-heads {num_heads} does not divide --hidden-size {hidden}{explicit}")
    if derived_head_dim:
        if hidden // num_heads != d:
            raise KinheritError(
                f"hidden {hidden} / heads {num_heads} = head_dim {hidden // num_heads}, but the source's "
                f"head_dim is {d}; growth adds heads and keeps head_dim: pass --num-heads {hidden // d}"
            )
    group = src.heads // src.kv_heads
    if num_kv_heads is None:
        num_kv_heads = num_heads // group if num_heads % group == 0 else src.kv_heads
    if family.config.kv_heads is None and num_kv_heads != num_heads:
        raise KinheritError(f"family {family.name} has no grouped-query attention: --num-kv-heads must equal heads")
    _not_smaller("--num-kv-heads", num_kv_heads, src.kv_heads)
    if num_heads % num_kv_heads:
        raise KinheritError(f"--num-kv-heads {num_kv_heads} does not divide the {num_heads} heads")
    if num_heads // num_kv_heads < group:
        raise KinheritError(
            f"{num_heads} heads / {num_kv_heads} kv-heads = {num_heads // num_kv_heads} query heads per "
            f"kv-head, fewer than the source's {group}: query groups cannot be split"
        )
    if intermediate_size is None:
        if (src.ffn * hidden) % src.hidden:
            raise KinheritError(f"FFN {src.ffn} x {hidden}/{src.hidden} is not an integer; pass --intermediate-size")
        intermediate_size = src.ffn * hidden // src.hidden
    _not_smaller("--intermediate-size", intermediate_size, src.ffn)
    layers = num_layers if num_layers is not None else src.layers
    _not_smaller("--num-layers", layers, src.layers)
    return Shape(hidden, intermediate_size, num_heads, num_kv_heads, d, layers)


def _not_smaller(flag: str, new: int, old: int) -> None:
    if new < old:
        raise KinheritError(f"{flag} {new} is smaller than the source's {old}; kinherit grow only grows")
    if new <= 0:
        raise KinheritError(f"{flag} must be positive")


def make_plan(
    config, options: GrowthOptions | dict | None = None, *, architecture: str | None = None, **kwargs
) -> GrowthPlan:
    """Plan the growth of a model with `config` (and class name `architecture`, default the config's) by
    `options` (a `GrowthOptions`, or its fields as keyword arguments). `noise_db=None` turns the
    symmetry-breaking noise off (with a warning when units are duplicated: they would never diverge).
    `num_experts` upcycles the grown dense model into a mixture of experts (`kinherit.grow.upcycle`)."""
    options = GrowthOptions.of(options, **kwargs)
    family, head = detect(config, architecture)
    src = read_shape(family, config)
    tgt = target_shape(family, src, **options.sizes)
    op = WIDTH_OPERATORS.lookup(options.width)
    rng = random.Random(options.seed)
    hidden = op.unit_map(src.hidden, tgt.hidden, rng, "hidden")
    ffn = op.unit_map(src.ffn, tgt.ffn, rng, "intermediate")
    kv = op.unit_map(src.kv_heads, tgt.kv_heads, rng, "kv-heads")
    g_old, g_new = src.heads // src.kv_heads, tgt.heads // tgt.kv_heads
    slots = op.unit_map(g_old, g_new, rng, "query heads per kv-head")
    # query head j sits in kv group j // g_new and must copy a query head of that group's source
    heads = [
        -1 if kv[j // g_new] < 0 or slots[j % g_new] < 0 else kv[j // g_new] * g_old + slots[j % g_new]
        for j in range(tgt.heads)
    ]
    unit_maps = {"hidden": hidden, "ffn": ffn, "heads": heads, "kv_heads": kv}
    depth = DEPTH_OPERATORS.lookup(options.depth)
    layers = depth(src.layers, tgt.layers)
    channel_maps = GrowthPlan.channel_maps_of(src, unit_maps)
    exact = op.claims_exact(channel_maps, family.normalized_spaces) and depth.claims_exact(
        family.residual, src.layers, tgt.layers
    )
    target_config = write_shape(family, config, tgt, [s for s, _ in layers])
    upcycle = None
    if options.num_experts is not None:
        upcycle = plan_upcycle(family.name, head.architecture, target_config, options)
        exact = exact and upcycle.exact
    plan = GrowthPlan(
        family=family.name,
        architecture=head.architecture,
        source_config=config.to_dict(),
        target_config=target_config.to_dict(),
        source_shape=src,
        target_shape=tgt,
        width=options.width,
        unit_maps=unit_maps,
        depth=options.depth,
        layers=layers,
        tied=head.tied is not None and bool(getattr(config, "tie_word_embeddings", False)),
        exact_claimed=exact,
        noise_db=None if options.noise_db is None else float(options.noise_db),
        noise_seed=options.seed,
        upcycle=upcycle,
    )
    if options.noise_db is None and plan.duplicates_units:
        warnings.warn(NO_NOISE_WARNING, UserWarning, stacklevel=2)
    return plan


NO_NOISE_WARNING = (
    "symmetry-breaking noise is off: duplicated units get identical gradients and stay identical copies "
    "for the whole training, so the grown model trains like the small one (pass a noise SNR to avoid this)"
)


def load_plan(growth: GrowthPlan | dict | str | os.PathLike) -> GrowthPlan:
    """A plan from a GrowthPlan, a growth.json dict, a growth.json path, or a grown folder."""
    if isinstance(growth, GrowthPlan):
        return growth
    if isinstance(growth, dict):
        return GrowthPlan.from_dict(growth["plan"] if "plan" in growth else growth)
    path = os.fspath(growth)
    if os.path.isdir(path):
        path = os.path.join(path, "growth.json")
    if not os.path.isfile(path):
        raise KinheritError(f"{path} does not exist (expected a growth.json)")
    with open(path) as handle:
        return load_plan(json.load(handle))
