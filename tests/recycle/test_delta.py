import json

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

from kinherit.recycle.delta import recycle_full

from .conftest import LABELS, make_base, make_tuned


@pytest.mark.parametrize("scale", [1.0, 0.5])
def test_delta_arithmetic_is_exact_tensor_by_tensor(tmp_path, tokenizer_dir, scale):
    a = make_base(tmp_path / "A", tokenizer_dir, seed=0)
    tuned = make_tuned(a, tmp_path / "A_tuned")
    b = make_base(tmp_path / "B", tokenizer_dir, seed=7)  # stands in for A continually pre-trained
    report = recycle_full(a, tuned, b, tmp_path / "init", scale=scale)

    base = AutoModelForCausalLM.from_pretrained(str(a)).state_dict()
    new = AutoModelForCausalLM.from_pretrained(str(b)).state_dict()
    tuned_state = load_file(str(tuned / "model.safetensors"))
    out = load_file(str(tmp_path / "init" / "model.safetensors"))
    backbone = {k for k in tuned_state if k.startswith("model.")}
    assert set(out) == backbone | {"score.weight"}
    for key in backbone:
        torch.testing.assert_close(out[key], new[key] + scale * (tuned_state[key] - base[key]), rtol=0, atol=0)
    torch.testing.assert_close(out["score.weight"], tuned_state["score.weight"], rtol=0, atol=0)  # head from A_tuned, unscaled
    assert sorted(report.transferred) == sorted(backbone) and report.head == ["score.weight"] and not report.mapped
    assert list(report.skipped) == ["lm_head.weight"] and not report.kept
    config = json.loads((tmp_path / "init" / "config.json").read_text())
    assert config["architectures"] == ["LlamaForSequenceClassification"] and list(config["id2label"].values()) == LABELS
    assert json.loads((tmp_path / "init" / "recycle.json").read_text())["scale"] == scale
    AutoModelForSequenceClassification.from_pretrained(str(tmp_path / "init"))  # a normal HF folder


def test_bert_pooler_counts_as_head(tmp_path, tokenizer_dir):
    a = make_base(tmp_path / "A", tokenizer_dir, family="bert")
    tuned = make_tuned(a, tmp_path / "A_tuned")
    b = make_base(tmp_path / "B", tokenizer_dir, family="bert", seed=3)
    report = recycle_full(a, tuned, b, tmp_path / "init")
    assert report.head == ["bert.pooler.dense.bias", "bert.pooler.dense.weight", "classifier.bias", "classifier.weight"]
    assert all(k.startswith("cls.predictions") for k in report.skipped)
    out, tuned_state = load_file(str(tmp_path / "init" / "model.safetensors")), load_file(str(tuned / "model.safetensors"))
    for key in report.head:
        torch.testing.assert_close(out[key], tuned_state[key], rtol=0, atol=0)
