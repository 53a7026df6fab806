"""Declarative description of a model family: which tensor reads and writes which dimension "space".

A family is data (one record per file in `families/`), in the spirit of mergekit's architecture JSONs. Every tensor
axis is written as `"<kind>:<space>[+<space>...]"`:

* kind `out`   -- the axis *produces* units of the space (Linear rows, embedding columns, biases):
                  growing copies the source unit.
* kind `in`    -- the axis *reads* units of the space (Linear columns, Conv1D rows): growing copies
                  and divides by the unit's replication count, so `W' x' = W x` on duplicated `x'`.
* kind `norm`  -- a LayerNorm/RMSNorm gamma or beta over the space: copied (element-wise).
* kind `fixed` -- never grows (vocab, positions, token types); the space name is documentation.

Spaces: `hidden` (residual stream, channels), `ffn` (MLP units), `q` (query heads x head_dim),
`kv` (key/value heads x head_dim). `+` fuses segments along one axis (GPT-2's `c_attn` is
`out:q+kv+kv`). Layer tensors use `{layer}` in their names; layers are the sixth space.

Mixture-of-experts blocks store all experts in one 3-D tensor with a leading `fixed:experts` axis
(Mixtral's `experts.gate_up_proj` is `("fixed:experts", "out:ffn+ffn", "in:hidden")`): every operator acts
on each expert alike, so an expert's copies and divisions, and its noise, are those of a dense MLP.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from transformers import PretrainedConfig

AxisKind = Literal["in", "out", "norm", "fixed"]
GROWABLE = ("hidden", "ffn", "q", "kv")


@dataclass(frozen=True)
class Axis:
    kind: AxisKind
    spaces: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> Axis:
        kind, _, spaces = text.partition(":")
        assert kind in ("in", "out", "norm", "fixed"), f"bad axis kind in {text!r}"
        parts = tuple(spaces.split("+"))
        assert kind == "fixed" or all(p in GROWABLE for p in parts), f"bad space in {text!r}"
        return cls(kind, parts)  # type: ignore[arg-type]


@dataclass(frozen=True)
class TensorSpec:
    """One weight. `residual_out` marks the projections that write into the residual stream
    (attention out, MLP down, and their biases): zeroing them makes a pre-norm layer the identity."""

    name: str
    axes: tuple[Axis, ...]
    optional: bool = False
    residual_out: bool = False

    @property
    def per_layer(self) -> bool:
        return "{layer}" in self.name

    def with_prefix(self, prefix: str) -> TensorSpec:
        return TensorSpec(prefix + self.name, self.axes, self.optional, self.residual_out)


def t(name: str, *axes: str, optional: bool = False, residual_out: bool = False) -> TensorSpec:
    """Shorthand used by the family tables: `t("mlp.c_fc.weight", "in:hidden", "out:ffn")`."""
    return TensorSpec(name, tuple(Axis.parse(a) for a in axes), optional, residual_out)


DEFAULT_NUM_EXPERTS = 4
DEFAULT_EXPERTS_PER_TOKEN = 2
"""Mixture-of-experts sizes of a model built from `model:` sizes that leave them unset."""


@dataclass(frozen=True)
class ConfigKeys:
    """Names of the shape fields in the family's `config.json`."""

    hidden: str
    ffn: str
    heads: str
    layers: str
    kv_heads: str | None = None  # None: multi-head attention only (kv-heads == heads)
    head_dim: str | None = None  # None: head_dim = hidden / heads
    ffn_default_factor: int | None = None  # GPT-2: n_inner=None means 4 * n_embd
    experts: str | None = None  # mixture of experts: the expert count (`num_local_experts`); None for dense MLPs
    experts_per_token: str | None = None  # mixture of experts: k, the experts each token is routed to


@dataclass(frozen=True)
class HeadSpec:
    """One concrete architecture of a family: where the base model lives and what sits on top.

    `tied` = (head tensor, embedding tensor) when `config.tie_word_embeddings`; the tied head reads
    the hidden space through the *embedding's* copied (not divided) columns, so the norms in
    `head_norms` (the last op before the head) are divided by the replication count instead.
    """

    architecture: str
    base_prefix: str
    output: Literal["causal_lm", "masked_lm", "hidden"]
    tensors: tuple[TensorSpec, ...] = ()
    tied: tuple[str, str] | None = None
    head_norms: tuple[str, ...] = ()


ConfigBuilder = Callable[[Any, int, int], PretrainedConfig]
"""`(model: section (a `config.ModelConfig`), vocabulary size, positions) -> transformers config` of a fresh model."""


@dataclass(frozen=True)
class FamilySpec:
    """Everything kinherit knows about one family, registered once (`catalog.register_family`):
    its tensor table (`base_tensors` + `heads`), how its config is built from `model:` sizes
    (`build_config`), its sequence-classification head (`classifier`, tensors at the top level of
    `AutoModelForSequenceClassification`, backbone under the LM head's prefix) and its paper."""

    name: str
    model_types: tuple[str, ...]
    config: ConfigKeys
    residual: Literal["pre_norm", "post_norm"]
    base_tensors: tuple[TensorSpec, ...]
    build_config: ConfigBuilder
    classifier: tuple[TensorSpec, ...]
    reference: str
    heads: tuple[HeadSpec, ...] = field(default=())
    normalized_spaces: tuple[str, ...] = ("hidden",)
    """Spaces some norm takes its statistics over (OLMo 2's q/k norms cover the whole q and kv width):
    growing them is exact only when every unit is copied equally often."""
    required_config: tuple[tuple[str, Any], ...] = ()
    """(config key, value) pairs the tensor table assumes (e.g. qwen2_moe's `mlp_only_layers: []`: every layer
    sparse); a config with another value is refused with a one-line error naming the key."""

    @property
    def lm_head(self) -> HeadSpec:
        """The language-model architecture (the one `--model.family` pre-trains)."""
        return next(h for h in self.heads if h.output != "hidden")

    @property
    def task(self) -> Literal["causal", "masked"]:
        return "masked" if self.lm_head.output == "masked_lm" else "causal"

    def head(self, architecture: str) -> HeadSpec:
        for head in self.heads:
            if head.architecture == architecture:
                return head
        raise KeyError(architecture)

    def tensors(self, architecture: str) -> tuple[TensorSpec, ...]:
        """Full-name specs for one architecture: base tensors under the prefix, then the head."""
        head = self.head(architecture)
        return tuple(s.with_prefix(head.base_prefix) for s in self.base_tensors) + head.tensors
