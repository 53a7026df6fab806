"""Recycling across upcycling: B = upcycle(grow(A)), so B + G(A_tuned − A) with the widened head is A_tuned's
classifier as a mixture of experts (every expert the tuned MLP), logits within 1e-4."""

import pytest
import torch

from kinherit.grow import grow_folder
from kinherit.hf_folder import load_classifier
from kinherit.recycle.delta import recycle_full

from .conftest import make_base, make_tuned, sample_inputs


@pytest.mark.parametrize(
    ("family", "moe"), [("llama", "MixtralForSequenceClassification"), ("qwen2", "Qwen2MoeForSequenceClassification")]
)
def test_recycled_start_on_an_upcycled_base_reproduces_the_tuned_classifier(tmp_path, tokenizer_dir, family, moe):
    a = make_base(tmp_path / "A", tokenizer_dir, family=family)
    tuned = make_tuned(a, tmp_path / "A_tuned")
    grow_folder(a, tmp_path / "B", hidden_size=64, num_experts=4, experts_per_token=2)
    report = recycle_full(a, tuned, tmp_path / "B", tmp_path / "init")
    assert report.mapped and not report.transferred
    assert any("experts.gate_up_proj" in key for key in report.mapped)

    inputs = sample_inputs(tokenizer_dir)
    expected = load_classifier(tuned, "A_TUNED")[0].eval()(**inputs).logits
    recycled = load_classifier(tmp_path / "init", "init")[0].eval()
    assert type(recycled).__name__ == moe and recycled.config.hidden_size == 64
    torch.testing.assert_close(recycled(**inputs).logits, expected, rtol=0, atol=1e-4)
