"""Width operators: how each grown space maps its units onto the source's (registered by name).

An operator declares what it returns: the unit maps (`unit_map`), the layer whose grown producer parameters
the repeated copies take (`donor_layer`: their own by default, the next one for AKI), and when the result is
exact (`claims_exact`). The weight surgery is shared and linear: producer axes copy, consumer axes copy and
divide by the replication count (see `maps.py`).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

from kinherit.errors import KinheritError
from kinherit.registry import Registry

if TYPE_CHECKING:  # no torch at import: `grow.options` (and through it the config) reads the registry
    from kinherit.grow.maps import UnitMap

WIDTH_OPERATORS: Registry[WidthOperator] = Registry("width operator")


class WidthOperator:
    """Base: subclasses set `name` and implement `unit_map` and `claims_exact` (and may override `donor_layer`)."""

    name: str = ""
    reference: str = ""
    """The paper the operator implements: "Author et al. year, title, URL"."""

    def unit_map(self, old: int, new: int, rng: random.Random, what: str) -> list[int]:
        raise NotImplementedError

    def donor_layer(self, layer: int, layers: int) -> int | None:
        """The source layer whose grown producer parameters (rows, norm entries) the repeated copies in source
        layer `layer` of `layers` take; None: their own (every copy of a unit is then the same unit)."""
        return None

    def claims_exact(self, maps: dict[str, UnitMap], normalized: tuple[str, ...]) -> bool:
        """Whether the maps preserve the function, given the spaces a norm takes statistics over
        (`FamilySpec.normalized_spaces`)."""
        raise NotImplementedError


def register_width(cls: type[WidthOperator]) -> type[WidthOperator]:
    """Class decorator: register one instance under `cls.name`, with `cls.reference`."""
    WIDTH_OPERATORS.add(cls.name, cls(), cls.reference)
    return cls


def _balanced(old: int, new: int, rng: random.Random) -> list[int]:
    """Identity, then whole tiles, then a random sample *without replacement* for the remainder:
    every unit is copied floor(new/old) or ceil(new/old) times."""
    return list(range(old)) * (new // old) + rng.sample(range(old), new % old)


@register_width
class Clone(WidthOperator):
    """HyperCloning-style tiling: new unit j copies j mod old (hidden becomes [x, x, ...]).

    Exact for integer multipliers: LayerNorm/RMSNorm statistics of a tiled vector are unchanged,
    consumers divide by the multiplier, heads grow by whole heads (head_dim, softmax scale and RoPE
    unchanged), and GQA groups are tiled consistently.
    """

    name = "clone"
    reference = (
        "Samragh et al. 2024, HyperCloning: Scaling Smart: Accelerating Large Language Model Pre-training with "
        "Small Model Initialization, https://arxiv.org/abs/2409.12903"
    )

    def unit_map(self, old: int, new: int, rng: random.Random, what: str) -> list[int]:
        if new % old:
            raise KinheritError(
                f"--width clone needs integer multiples, but {what} {old}->{new} is x{new / old:.3g}; "
                "use --width net2net for non-integer growth"
            )
        return [j % old for j in range(new)]

    def claims_exact(self, maps: dict[str, UnitMap], normalized: tuple[str, ...]) -> bool:
        return True


@register_width
class Net2Net(WidthOperator):
    """Net2Net / bert2BERT function-preserving init (FPI) for any size: new units copy a randomly
    chosen source unit (balanced: each copied floor or ceil(new/old) times), consumers divide by the
    replication count.

    Exact for FFN units and heads at any size when nothing normalizes over them. For the hidden size
    (and q/kv in families with whole-width q/k norms) exact only when every channel is copied equally
    often (integer multiples): otherwise LayerNorm/RMSNorm mean and variance are taken over a
    non-uniformly replicated vector and change.
    """

    name = "net2net"
    reference = (
        "Chen, Goodfellow & Shlens 2016, Net2Net, https://arxiv.org/abs/1511.05641; Chen et al. 2022, bert2BERT "
        "(FPI), https://arxiv.org/abs/2110.07143"
    )

    def unit_map(self, old: int, new: int, rng: random.Random, what: str) -> list[int]:
        return _balanced(old, new, rng)

    def claims_exact(self, maps: dict[str, UnitMap], normalized: tuple[str, ...]) -> bool:
        return all(maps[s].uniform for s in normalized)


@register_width
class Zero(WidthOperator):
    """Zero-initialised expansion: the source weights in the top-left block; every new unit is drawn
    (index −1): random in-coming weights scaled like the source tensor's entries, zero out-going weights
    (`noise.drawn_term`), so it computes a non-zero activation, adds nothing, and trains (zero in-coming
    weights too would leave a gated MLP's unit at silu(0)·0 = 0 with zero gradients forever). Exact for FFN
    units and heads, not for the hidden size: the new channels change LayerNorm mean/variance and RMSNorm's RMS."""

    name = "zero"
    reference = (
        "Gesmundo & Maile 2023, Composable Function-preserving Expansions for Transformer Architectures "
        "(zero-initialised expansion), https://arxiv.org/abs/2308.06103"
    )

    def unit_map(self, old: int, new: int, rng: random.Random, what: str) -> list[int]:
        return list(range(old)) + [-1] * (new - old)

    def claims_exact(self, maps: dict[str, UnitMap], normalized: tuple[str, ...]) -> bool:
        return all(maps[s].is_identity for s in normalized)


@register_width
class AKI(WidthOperator):
    """bert2BERT advanced knowledge initialization: FPI unit maps, but in layer l the out-going
    parameters of the *new* units (rows of producers, norm entries) come from layer l+1's grown
    tensors (the top layer uses its own). Not function preserving by design."""

    name = "aki"
    reference = "Chen et al. 2022, bert2BERT: Towards Reusable Pretrained Language Models (AKI), https://arxiv.org/abs/2110.07143"

    def donor_layer(self, layer: int, layers: int) -> int | None:
        return layer + 1 if layer + 1 < layers else None

    def unit_map(self, old: int, new: int, rng: random.Random, what: str) -> list[int]:
        return _balanced(old, new, rng)

    def claims_exact(self, maps: dict[str, UnitMap], normalized: tuple[str, ...]) -> bool:
        return all(m.is_identity for m in maps.values())
