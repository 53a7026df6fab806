"""The growable shape of a model (hidden, ffn, heads, kv-heads, head_dim, layers), read from and
written to a transformers config through the family's `ConfigKeys`."""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

from kinherit.arch.spec import FamilySpec
from kinherit.errors import KinheritError


@dataclass(frozen=True)
class Shape:
    hidden: int
    ffn: int
    heads: int
    kv_heads: int
    head_dim: int
    layers: int

    def space_sizes(self) -> dict[str, int]:
        """Channel count of every growable space."""
        return {
            "hidden": self.hidden,
            "ffn": self.ffn,
            "q": self.heads * self.head_dim,
            "kv": self.kv_heads * self.head_dim,
        }

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    def model_sizes(self) -> dict[str, int]:
        """The shape as kinherit's `model:` size keys (`ModelConfig`)."""
        return {
            "hidden_size": self.hidden,
            "num_layers": self.layers,
            "num_heads": self.heads,
            "num_kv_heads": self.kv_heads,
            "intermediate_size": self.ffn,
        }


def read_shape(family: FamilySpec, config) -> Shape:
    """The growable shape of `config`; KinheritError when it sets a `family.required_config` key otherwise."""
    for key, value in family.required_config:
        if getattr(config, key, value) != value:
            raise KinheritError(
                f"{family.name} with {key}={getattr(config, key)!r} is not supported (kinherit describes "
                f"only models with {key}={value!r})"
            )
    keys = family.config
    hidden = int(getattr(config, keys.hidden))
    heads = int(getattr(config, keys.heads))
    ffn = getattr(config, keys.ffn)
    if ffn is None:
        assert keys.ffn_default_factor is not None, f"{family.name}: {keys.ffn} unset"
        ffn = keys.ffn_default_factor * hidden
    kv = getattr(config, keys.kv_heads, None) if keys.kv_heads else None
    head_dim = getattr(config, keys.head_dim, None) if keys.head_dim else None
    return Shape(
        hidden=hidden,
        ffn=int(ffn),
        heads=heads,
        kv_heads=int(kv or heads),
        head_dim=int(head_dim or hidden // heads),
        layers=int(getattr(config, keys.layers)),
    )


def write_shape(family: FamilySpec, config, shape: Shape, layer_sources: list[int]):
    """A copy of `config` with `shape`; per-layer config lists (e.g. Qwen2's `layer_types`) follow
    `layer_sources` (target layer j takes source layer layer_sources[j]'s entry)."""
    keys = family.config
    old_layers = int(getattr(config, keys.layers))
    data = copy.deepcopy(config.to_dict())
    data[keys.hidden] = shape.hidden
    data[keys.ffn] = shape.ffn
    data[keys.heads] = shape.heads
    data[keys.layers] = shape.layers
    if keys.kv_heads:
        data[keys.kv_heads] = shape.kv_heads
    if keys.head_dim:
        data[keys.head_dim] = shape.head_dim
    for name, value in list(data.items()):
        if isinstance(value, list) and len(value) == old_layers and name != "architectures":
            data[name] = [value[src] for src in layer_sources]
    return type(config).from_dict(data)
