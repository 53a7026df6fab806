"""Declarative description of a model family: which tensor reads and writes which dimension "space".

A family is data (one record per file in `families/`), in the spirit of mergekit's architecture JSONs. Every tensor
axis is written as `"<kind>:<space>[+<space>...]"`:

* kind `out`   -- the axis *produces* units of the space (Linear rows, embedding columns, biases):
                  growing copies the source unit.
* kind `in`    -- the axis *reads* units of the space (Linear columns, Conv1D rows): growing copies
                  and divides by the unit's replication count, so `W' x' = W x` on duplicated `x'`.
* kind `norm`  -- a LayerNorm/RMSNorm gamma or beta over the space: copied (element-wise).
* kind `fixed` -- never grows (vocab, positions, token types); the space name is documentation.
                  Mixture-of-experts blocks store all experts in one 3-D tensor with a leading
                  `fixed:experts` axis (Mixtral's `experts.gate_up_proj` is `("fixed:experts",
                  "out:ffn+ffn", "in:hidden")`): every operator acts on each expert alike, so an
                  expert's copies, divisions and noise are those of a dense MLP.

Spaces: `hidden` (residual stream, channels), `ffn` (MLP units), `q` (query heads x head_dim),
`kv` (key/value heads x head_dim). `+` fuses segments along one axis (GPT-2's `c_attn` is
`out:q+kv+kv`). Layer tensors use `{layer}` in their names; layers are the sixth space.

A `/head` suffix interleaves the fused segments per attention head instead of concatenating them:
GPT-NeoX's `query_key_value` is `out:q+kv+kv/head`, its output axis laid out as (heads, 3, head_dim),
i.e. head h holds [q_h | k_h | v_h]. Each segment contributes size/heads channels to every head group;
growth regroups the axis into concatenated segments, grows them, and interleaves them again over the
grown heads (`grow.interleave`). Only producer and norm axes may be interleaved.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Literal, Protocol

from transformers import PretrainedConfig

AxisKind = Literal["in", "out", "norm", "fixed"]
GROWABLE = ("hidden", "ffn", "q", "kv")


@dataclass(frozen=True)
class Axis:
    kind: AxisKind
    spaces: tuple[str, ...]
    interleaved: bool = False  # `/head`: segments interleaved per attention head (see the module docstring)

    @classmethod
    def parse(cls, text: str) -> Axis:
        kind, _, spaces = text.partition(":")
        assert kind in ("in", "out", "norm", "fixed"), f"bad axis kind in {text!r}"
        spaces, interleaved = spaces.removesuffix("/head"), spaces.endswith("/head")
        assert not interleaved or kind in ("out", "norm"), f"only producer/norm axes interleave: {text!r}"
        parts = tuple(spaces.split("+"))
        assert kind == "fixed" or all(p in GROWABLE for p in parts), f"bad space in {text!r}"
        return cls(kind, parts, interleaved)  # type: ignore[arg-type]


@dataclass(frozen=True)
class TensorSpec:
    """One weight. `residual_out` marks the tensors whose zeroing makes a new layer the identity: the
    projections that write into the residual stream (attention out, MLP down, their biases), or, in a
    family with norms on the sublayer output (OLMo 2's `branch_norm`, Gemma's post-attention and
    post-feedforward norms), those norms' gains -- RMSNorm(0) is 0 only in exact arithmetic (the round-off of a zeroed
    projection is divided by √eps), while a zero gain gives an exact 0.

    `offset`: the module uses `offset + w` as its effective value (Gemma's RMSNorm scales by 1 + w).
    Every scaling acts on the effective value, w' = (offset + w)·c − offset, and "zero" means
    w' = −offset. That map is affine; its linear part w' = w·c (`grow_state(linear=True)`) is what
    maps a fine-tuning delta, so grow(A + D) = grow(A) + grow_map(D) still holds.

    `scaled_by_sqrt`: the model multiplies this tensor's output by √(size of that space) (Gemma's
    embedding normalizer √hidden_size). Growing the space d → d' multiplies the tensor by √(d/d'), so
    √d'·E' equals √d·E on every copied unit."""

    name: str
    axes: tuple[Axis, ...]
    optional: bool = False
    residual_out: bool = False
    offset: float = 0.0
    scaled_by_sqrt: str | None = None

    @property
    def per_layer(self) -> bool:
        return "{layer}" in self.name

    def with_prefix(self, prefix: str) -> TensorSpec:
        return replace(self, name=prefix + self.name)


def t(
    name: str,
    *axes: str,
    optional: bool = False,
    residual_out: bool = False,
    offset: float = 0.0,
    scaled_by_sqrt: str | None = None,
) -> TensorSpec:
    """Shorthand used by the family tables: `t("mlp.c_fc.weight", "in:hidden", "out:ffn")`."""
    assert scaled_by_sqrt is None or scaled_by_sqrt in GROWABLE, f"bad space {scaled_by_sqrt!r}"
    return TensorSpec(name, tuple(Axis.parse(a) for a in axes), optional, residual_out, offset, scaled_by_sqrt)


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
    `head_norms` (the last op before the head) are divided by the replication count instead. When the
    embedding is also multiplied by c = √(d/d') (`TensorSpec.scaled_by_sqrt`), the head's logits are
    Σ_i c·count_i·f_i·E_i·n_i for a norm gain factor f_i, so the norm's effective gain is multiplied by
    f_i = 1/(c·count_i) (Gemma clone ×k: (1 + w') = (1 + w)/√k).
    """

    architecture: str
    base_prefix: str
    output: Literal["causal_lm", "masked_lm", "hidden"]
    tensors: tuple[TensorSpec, ...] = ()
    tied: tuple[str, str] | None = None
    head_norms: tuple[str, ...] = ()


class ModelSizes(Protocol):
    """What the family builders read from a `model:` section (`config.ModelConfig` is one); a protocol, so that
    `arch` needs nothing from `kinherit.config`."""

    family: str | None
    from_: str | None
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int | None
    intermediate_size: int | None
    tie_word_embeddings: bool
    dropout: float
    max_position_embeddings: int | None
    num_experts: int | None
    num_experts_per_tok: int | None


ConfigBuilder = Callable[[ModelSizes, int, int], PretrainedConfig]
"""`(model: section, vocabulary size, positions) -> transformers config` of a fresh model."""


@dataclass(frozen=True)
class MoeTarget:
    """How a dense family becomes a mixture of experts (sparse upcycling, `grow.upcycle`): the target's model type
    (a registered family, whose `required_config` the upcycled config is given), its class-name prefix (`Llama` →
    `Mixtral`: `LlamaForCausalLM` → `MixtralForCausalLM`), its config keys, and the config entries the upcycling
    itself needs on top (`fixed`, e.g. Qwen's `norm_topk_prob: true`: identical experts are the dense MLP only when
    the selected routing weights sum to 1)."""

    model_type: str
    source_prefix: str
    target_prefix: str
    experts_key: str  # config key of the number of experts
    expert_ffn_key: str  # config key of one expert's FFN size
    shared_expert: bool = False  # qwen2_moe: a shared expert behind a sigmoid gate
    fixed: tuple[tuple[str, Any], ...] = ()

    def architecture(self, source: str) -> str | None:
        """The target class of the dense class `source`; None when `source` is not one of the source family's."""
        return (
            self.target_prefix + source.removeprefix(self.source_prefix)
            if source.startswith(self.source_prefix)
            else None
        )

    @property
    def down_scale(self) -> float:
        """s: the routed experts' share of the MLP (½ when the shared expert carries the other half)."""
        return 0.5 if self.shared_expert else 1.0


@dataclass(frozen=True)
class FamilySpec:
    """Everything kinherit knows about one family, registered once (`catalog.register_family`):
    its tensor table (`base_tensors` + `heads`), how its config is built from `model:` sizes
    (`build_config`), its sequence-classification head (`classifier`, tensors at the top level of
    `AutoModelForSequenceClassification`, backbone under the LM head's prefix) and its paper."""

    name: str
    model_types: tuple[str, ...]
    config: ConfigKeys
    residual: Literal["pre_norm", "post_norm", "branch_norm"]
    """Where the norms sit: `pre_norm` x + f(LN(x)) (GPT-2, Llama), `post_norm` LN(x + f(x)) (BERT),
    `branch_norm` x + LN(f(x)), a norm on the sublayer output inside the residual branch (OLMo 2). Zeroing
    the `residual_out` tensors makes a new layer the identity for `pre_norm` and `branch_norm`."""
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
    upcycle: MoeTarget | None = None
    """The mixture of experts this dense family upcycles into (`kinherit grow --num-experts`), if any."""
    tiny_fields: tuple[tuple[str, Any], ...] = ()
    """transformers config fields the tiny test models of this family set on top of `build_config`, so that they
    exercise its quirks (windows shorter than the verified sequences, soft-caps small enough to be non-linear)."""

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
