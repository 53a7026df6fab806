"""Verification: compare the source and the grown model on the same inputs.

Logits (never greedy text: it hides a uniform logit scale) give max |dlogits|, and the mean and max over
positions of KL(source || grown); encoders also give max |dhidden| of the last hidden state, read back
through the hidden unit map (mean over the copies of each source channel, drawn channels ignored).

The deviation an exact operator is held to is relative to the output's scale,

    deviation = max |Δ| / max(1, max |reference|)

so fp32 round-off of a model with logits in the hundreds passes while a broken operator on small logits
fails. The inputs: random ids (2 × 64, or the positions the model has), one longer random sequence past the
sliding window of a family that has one, and with a tokenizer a fixed English and Python passage.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch

from kinherit.grow.maps import UnitMap
from kinherit.grow.plan import GrowthPlan

EXACT_TOLERANCE = 1e-4  # fp32, relative to the output scale; an exact operator beyond this fails verification
RANDOM_LENGTH = 64  # tokens per random sequence (fewer when the model has fewer positions)
PAST_WINDOW = 32  # the long random sequence runs this many tokens past a sliding window
TEXT = (
    "The quick brown fox jumps over the lazy dog. Knowledge inheritance trains a larger model with a "
    "smaller one as its teacher, and growth starts the larger model from the smaller one's weights. "
    "Both are checked on real text, not only on random token ids.\n\n"
    "def mean(values: list[float]) -> float:\n"
    '    """The arithmetic mean of a non-empty list."""\n'
    "    return sum(values) / len(values)\n\n"
    "print(mean([1.0, 2.5, 4.0]))  # 2.5\n"
)
"""The fixed English and Python passage every growth with a tokenizer is verified on."""

Inputs = dict[str, torch.Tensor]
Outputs = tuple[torch.Tensor | None, torch.Tensor | None]  # (logits, last hidden state)


@dataclass
class Comparison:
    inputs: str  # e.g. "random 2x64"
    model: str  # "in-memory" or "reloaded"
    max_abs_logits: float | None
    mean_kl: float | None
    max_abs_hidden: float | None
    max_kl: float | None = None  # the largest per-position KL
    scale: float = 1.0  # max(1, max |reference output|): the deviation is relative to it

    @property
    def max_deviation(self) -> float:
        """max |Δ| / max(1, max |reference|) over logits and hidden states."""
        return max(v for v in (self.max_abs_logits, self.max_abs_hidden, 0.0) if v is not None) / self.scale


@dataclass
class GrowthReport:
    family: str
    architecture: str
    width: str
    depth: str
    noise_db: float | None
    source_shape: dict[str, int]
    target_shape: dict[str, int]
    source_params: int
    target_params: int
    exact_claimed: bool
    tolerance: float = EXACT_TOLERANCE
    upcycle: str | None = None  # "4 experts, top-2, ..." when upcycled into a mixture of experts
    comparisons: list[Comparison] = field(default_factory=list)

    @property
    def max_deviation(self) -> float:
        return max((c.max_deviation for c in self.comparisons), default=0.0)

    @property
    def passed(self) -> bool:
        """Exact operators must stay within the tolerance; the others only report."""
        return not self.exact_claimed or self.max_deviation <= self.tolerance

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["comparisons"] = [asdict(c) for c in self.comparisons]
        data["max_deviation"] = self.max_deviation
        data["passed"] = self.passed
        return data

    def table(self) -> str:
        """A small readable report for the terminal."""
        cols = ("hidden", "ffn", "heads", "kv_heads", "head_dim", "layers")
        lines = [f"grow {self.family} ({self.architecture})"]
        lines.append(f"  {'':8}" + "".join(f"{c:>10}" for c in cols) + f"{'params':>14}")
        for name, shape, params in (
            ("source", self.source_shape, self.source_params),
            ("target", self.target_shape, self.target_params),
        ):
            lines.append(f"  {name:8}" + "".join(f"{shape[c]:>10}" for c in cols) + f"{params:>14,}")
        claim = f"yes (tolerance {self.tolerance:.0e})" if self.exact_claimed else "no (deviation reported)"
        lines.append(f"  width={self.width}  depth={self.depth}  {noise_words(self.noise_db)}  exact: {claim}")
        if self.upcycle:
            lines.append(f"  upcycled to {self.upcycle}")
        if not self.comparisons:
            return "\n".join(lines)
        lines.append(
            f"  {'inputs':15}{'model':11}{'max|dlogits|':>14}{'max|dhidden|':>14}{'scale':>10}"
            f"{'relative':>11}{'mean KL':>11}{'max KL':>11}"
        )
        for c in self.comparisons:
            cells = [
                _fmt(c.max_abs_logits),
                _fmt(c.max_abs_hidden),
                f"{c.scale:.3g}",
                _fmt(c.max_deviation),
                _fmt(c.mean_kl),
                _fmt(c.max_kl),
            ]
            lines.append(
                f"  {c.inputs:15}{c.model:11}{cells[0]:>14}{cells[1]:>14}{cells[2]:>10}{cells[3]:>11}"
                f"{cells[4]:>11}{cells[5]:>11}"
            )
        verdict = (
            "PASS"
            if self.passed
            else f"FAIL: deviation {self.max_deviation:.2e} > {self.tolerance:.0e} (max |Δ| / max(1, max |output|))"
        )
        lines.append(f"  result: {verdict if self.exact_claimed else 'reported (not an exact operator)'}")
        return "\n".join(lines)


def noise_words(noise_db: float | None) -> str:
    """The symmetry-breaking noise in words: "noise=0 dB" read as no noise, but 0 dB is an SNR, noise as strong
    as the weights (its std is the weights' std × 10^(−dB/20))."""
    if noise_db is None:
        return "noise: off (duplicated units stay identical)"
    return f"noise: SNR {noise_db:g} dB, std {10.0 ** (-noise_db / 20.0):.3g}× the weights' (symmetry breaking on)"


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2e}"


def positions(config) -> int | None:
    """Token positions the model can read: its position table (RoBERTa's starts after the padding id)."""
    limit = getattr(config, "max_position_embeddings", None) or getattr(config, "n_positions", None)
    if limit and config.model_type in ("roberta", "xlm-roberta"):
        limit -= (config.pad_token_id or 0) + 1
    return limit


def sliding_window(config) -> int | None:
    """The attention window of a family with sliding-window layers (Gemma, Mistral), if set."""
    window = getattr(config, "sliding_window", None)
    return window if isinstance(window, int) and window > 0 else None


def sample_inputs(config, vocab: int, tokenizer=None, seed: int = 0) -> list[tuple[str, Inputs]]:
    """Random ids (B=2, T=64), a random sequence past the sliding window (B=1, T=window+32) when the family has
    one and the window is not already inside T=64, and with a tokenizer the encoded `TEXT`; all within the
    model's positions."""
    gen = torch.Generator().manual_seed(seed)
    limit = positions(config) or 1 << 30

    def ids(batch: int, length: int) -> tuple[str, Inputs]:
        x = torch.randint(0, vocab, (batch, length), generator=gen)  # (B, T)
        return f"random {batch}x{length}", {"input_ids": x, "attention_mask": torch.ones_like(x)}

    samples = [ids(2, min(limit, RANDOM_LENGTH))]
    window = sliding_window(config)
    if window is not None and min(limit, window + PAST_WINDOW) > samples[0][1]["input_ids"].shape[1]:
        samples.append(ids(1, min(limit, window + PAST_WINDOW)))
    if tokenizer is not None:
        encoded = tokenizer(TEXT, return_tensors="pt", truncation=True, max_length=min(limit, 512))
        samples.append(
            (
                f"text 1x{encoded['input_ids'].shape[1]}",
                {k: v for k, v in encoded.items() if k in ("input_ids", "attention_mask", "token_type_ids")},
            )
        )
    return samples


@torch.no_grad()
def outputs(model: torch.nn.Module, kind: str, inputs: Inputs) -> Outputs:
    """(logits, last hidden state), fp32 on the CPU, of a causal LM, masked LM or bare encoder/decoder body on
    whatever device it is, in eval mode (dropout off); the model's train/eval mode is restored."""
    training = model.training
    model.eval()
    device = next(model.parameters()).device
    if device.type == "meta":  # weights loaded module by module on the CPU (`offload.offloaded`)
        device = torch.device("cpu")
    inputs = {k: v.to(device) for k, v in inputs.items()}
    try:
        if kind == "causal_lm":
            return _host(model(**inputs).logits), None  # (B, T, V)
        if kind == "masked_lm":
            out = model(**inputs, output_hidden_states=True)
            return _host(out.logits), _host(out.hidden_states[-1])  # (B, T, V), (B, T, C)
        return None, _host(model(**inputs).last_hidden_state)  # (B, T, C)
    finally:
        model.train(training)


def _host(x: torch.Tensor) -> torch.Tensor:
    return x.float().cpu()


def compare(reference: Outputs, grown: Outputs, hidden_map: UnitMap, inputs: str, model: str) -> Comparison:
    (ref_logits, ref_hidden), (new_logits, new_hidden) = reference, grown
    max_logits = mean_kl = max_kl = max_hidden = None
    scale = 1.0
    if ref_logits is not None:
        max_logits = float((ref_logits - new_logits).abs().max())
        scale = max(scale, float(ref_logits.abs().max()))
        log_p, log_q = ref_logits.double().log_softmax(-1), new_logits.double().log_softmax(-1)
        kl = (log_p.exp() * (log_p - log_q)).sum(-1)  # (B, T)
        mean_kl, max_kl = float(kl.mean()), float(kl.max())
    if ref_hidden is not None:
        max_hidden = float((ref_hidden - hidden_map.readback(new_hidden)).abs().max())
        scale = max(scale, float(ref_hidden.abs().max()))
    return Comparison(inputs, model, max_logits, mean_kl, max_hidden, max_kl, scale)


class Verifier:
    """Source outputs computed once, then compared with any number of grown models."""

    def __init__(self, source: torch.nn.Module, plan: GrowthPlan, tokenizer=None, seed: int = 0):
        self.kind = plan.family_spec()[1].output
        self.hidden_map = plan.hidden_map()
        vocab = int(source.get_input_embeddings().weight.shape[0])
        self.samples = sample_inputs(source.config, vocab, tokenizer, seed)
        self.reference = [outputs(source, self.kind, inp) for _, inp in self.samples]

    def check(self, grown: torch.nn.Module, label: str) -> list[Comparison]:
        return [
            compare(ref, outputs(grown, self.kind, inp), self.hidden_map, name, label)
            for (name, inp), ref in zip(self.samples, self.reference)
        ]
