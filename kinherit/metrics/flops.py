"""FLOPs per token, counted the way the scaling-law literature does (Kaplan et al. 2020; PaLM's MFU).

    forward  = 2·N_matmul + 4·L·T·d_attn
    training = 3·forward = 6·N_matmul + 12·L·T·d_attn          (backward ≈ 2× forward)

N_matmul: the weights of every matrix multiply, i.e. all `nn.Linear` / GPT-2 `Conv1D` weights,
which is the non-embedding parameters plus the LM head (d·V, counted even when tied to the input
embedding, because the head is a real matmul while the embedding is a lookup). Norms, biases and
the softmax are lower-order and left out. The attention term is QKᵀ and A·V (2·T·d_attn multiply-adds
each per token and layer, d_attn = heads·head_dim), counted over the full T×T score matrix as dense
kernels compute it. T is the training sequence length.

Mixture of experts counts the *active* parameters, those one token actually multiplies: a router reads
the token with all E of its rows (2-D weights of a router module, e.g. `MixtralTopKRouter`), and the token
passes through k = `num_experts_per_tok` of the E experts, so a fused expert tensor (3-D, (E, out, in))
counts k/E of its weights. Shared experts and their gates are ordinary Linears, counted in full:

    N_matmul(MoE) = attention + Σ_layers (E·d router + k·3·d·ffn experts + shared expert) + V·d head
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn
from transformers import PretrainedConfig
from transformers.pytorch_utils import Conv1D


def matmul_params(model: nn.Module) -> int:
    """Number of weights one token multiplies (each shared tensor counted per use): Linear / Conv1D weights,
    router weights in full, and k/E of every fused expert tensor (see the module docstring)."""
    k = getattr(model.config, "num_experts_per_tok", None)
    total = 0
    for module in model.modules():
        if isinstance(module, (nn.Linear, Conv1D)):
            total += module.weight.numel()
        elif not isinstance(module, nn.Embedding):
            for p in module.parameters(recurse=False):
                if p.dim() == 2:  # a router: (E, d)
                    total += p.numel()
                elif p.dim() == 3:  # fused experts: (E, out, in), k of the E active per token
                    assert k is not None, (
                        f"{type(module).__name__} holds experts but the config has no num_experts_per_tok"
                    )
                    total += p.numel() // p.shape[0] * k
    return total


def _attention_shape(config: PretrainedConfig) -> tuple[int, int]:
    """(layers, d_attn) of a decoder or encoder config."""
    layers = getattr(config, "num_hidden_layers", None) or config.n_layer
    heads = getattr(config, "num_attention_heads", None) or config.n_head
    hidden = getattr(config, "hidden_size", None) or config.n_embd
    head_dim = getattr(config, "head_dim", None) or hidden // heads
    return layers, heads * head_dim


@dataclass(frozen=True)
class FlopsPerToken:
    """Forward and training FLOPs for one token of a length-`seq_len` sequence."""

    forward: int
    seq_len: int
    matmul_params: int

    @property
    def train(self) -> int:
        return 3 * self.forward


def flops_per_token(model: nn.Module, seq_len: int) -> FlopsPerToken:
    """2·N_matmul + 4·L·T·d_attn forward FLOPs per token (see module docstring)."""
    layers, d_attn = _attention_shape(model.config)
    n_matmul = matmul_params(model)
    return FlopsPerToken(forward=2 * n_matmul + 4 * layers * seq_len * d_attn, seq_len=seq_len, matmul_params=n_matmul)
