"""Verification: compare the source and the grown model on the same inputs.

Logits (never greedy text: it hides a uniform logit scale) give max |dlogits| and mean
KL(source || grown); encoders also give max |dhidden| of the last hidden state, read back through
the hidden unit map (mean over the copies of each source channel, zero-padded channels ignored).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any

import torch

from kinherit.grow.maps import UnitMap
from kinherit.grow.plan import GrowthPlan

EXACT_TOLERANCE = 1e-4  # fp32; an exact operator beyond this fails verification
SENTENCES = (
    "The quick brown fox jumps over the lazy dog.",
    "Knowledge inheritance trains a larger model with a smaller one as its teacher.",
)

Inputs = dict[str, torch.Tensor]
Outputs = tuple[torch.Tensor | None, torch.Tensor | None]  # (logits, last hidden state)


@dataclass
class Comparison:
    inputs: str
    model: str
    max_abs_logits: float | None
    mean_kl: float | None
    max_abs_hidden: float | None

    @property
    def max_deviation(self) -> float:
        return max(v for v in (self.max_abs_logits, self.max_abs_hidden, 0.0) if v is not None)


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
        for name, shape, params in (("source", self.source_shape, self.source_params),
                                     ("target", self.target_shape, self.target_params)):
            lines.append(f"  {name:8}" + "".join(f"{shape[c]:>10}" for c in cols) + f"{params:>14,}")
        noise = "off" if self.noise_db is None else f"{self.noise_db:g} dB"
        claim = f"yes (tolerance {self.tolerance:.0e})" if self.exact_claimed else "no (deviation reported)"
        lines.append(f"  width={self.width}  depth={self.depth}  noise={noise}  exact: {claim}")
        if self.upcycle:
            lines.append(f"  upcycled to {self.upcycle}")
        if not self.comparisons:
            return "\n".join(lines)
        lines.append(f"  {'inputs':12}{'model':11}{'max|dlogits|':>14}{'mean KL':>12}{'max|dhidden|':>14}")
        for c in self.comparisons:
            cells = [_fmt(c.max_abs_logits), _fmt(c.mean_kl), _fmt(c.max_abs_hidden)]
            lines.append(f"  {c.inputs:12}{c.model:11}{cells[0]:>14}{cells[1]:>12}{cells[2]:>14}")
        verdict = "PASS" if self.passed else f"FAIL: deviation {self.max_deviation:.2e} > {self.tolerance:.0e}"
        lines.append(f"  result: {verdict if self.exact_claimed else 'reported (not an exact operator)'}")
        return "\n".join(lines)


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.2e}"


def sample_inputs(vocab_size: int, tokenizer=None, seed: int = 0) -> list[tuple[str, Inputs]]:
    """Random token ids (B=2, T=12) and, with a tokenizer, the tokenized sample sentences."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, vocab_size, (2, 12), generator=gen)  # (B, T)
    samples = [("random ids", {"input_ids": ids, "attention_mask": torch.ones_like(ids)})]
    if tokenizer is not None:
        encoded = tokenizer(" ".join(SENTENCES), return_tensors="pt", truncation=True, max_length=32)
        samples.append(("text", {k: v for k, v in encoded.items() if k in ("input_ids", "attention_mask", "token_type_ids")}))
    return samples


@torch.no_grad()
def outputs(model: torch.nn.Module, kind: str, inputs: Inputs) -> Outputs:
    """(logits, last hidden state) of a causal LM, masked LM or bare encoder/decoder body, in eval
    mode (dropout off); the model's train/eval mode is restored."""
    training = model.training
    model.eval()
    try:
        if kind == "causal_lm":
            return model(**inputs).logits, None  # (B, T, V)
        if kind == "masked_lm":
            out = model(**inputs, output_hidden_states=True)
            return out.logits, out.hidden_states[-1]  # (B, T, V), (B, T, C)
        return None, model(**inputs).last_hidden_state  # (B, T, C)
    finally:
        model.train(training)


def compare(reference: Outputs, grown: Outputs, hidden_map: UnitMap, inputs: str, model: str) -> Comparison:
    (ref_logits, ref_hidden), (new_logits, new_hidden) = reference, grown
    max_logits = kl = max_hidden = None
    if ref_logits is not None:
        max_logits = float((ref_logits - new_logits).abs().max())
        log_p, log_q = ref_logits.double().log_softmax(-1), new_logits.double().log_softmax(-1)
        kl = float((log_p.exp() * (log_p - log_q)).sum(-1).mean())
    if ref_hidden is not None:
        max_hidden = float((ref_hidden - hidden_map.readback(new_hidden)).abs().max())
    return Comparison(inputs, model, max_logits, kl, max_hidden)


class Verifier:
    """Source outputs computed once, then compared with any number of grown models."""

    def __init__(self, source: torch.nn.Module, plan: GrowthPlan, tokenizer=None, seed: int = 0):
        self.kind = plan.family_spec()[1].output
        self.hidden_map = plan.hidden_map()
        vocab = int(source.get_input_embeddings().weight.shape[0])
        self.samples = sample_inputs(vocab, tokenizer, seed)
        self.reference = [outputs(source, self.kind, inp) for _, inp in self.samples]

    def check(self, grown: torch.nn.Module, label: str) -> list[Comparison]:
        return [
            compare(ref, outputs(grown, self.kind, inp), self.hidden_map, name, label)
            for (name, inp), ref in zip(self.samples, self.reference)
        ]
