"""Symmetry breaking: with the default noise the copies of duplicated units drift apart under training;
with noise off they stay identical under AdamW + weight decay + clipping, and the diagnostic says so."""

from __future__ import annotations

import json
import warnings

import torch
from safetensors.torch import save_file

from kinherit.grow import DEFAULT_NOISE_DB, copy_divergence, grow
from tiny_models import VOCAB, tiny_model


def _train(model: torch.nn.Module, steps: int = 5) -> dict[str, torch.Tensor]:
    """A few AdamW steps (weight decay, gradient clipping) on random token ids."""
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2, weight_decay=0.1)
    gen = torch.Generator().manual_seed(0)
    for _ in range(steps):
        ids = torch.randint(0, VOCAB, (4, 16), generator=gen)  # (B, T)
        loss = model(input_ids=ids, labels=ids).loss
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _grown(noise_db):
    """Grow a tiny llama 32 -> 64 wide, 2 -> 4 layers; noise off must warn, the default must not."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        growth = grow(tiny_model("llama", gqa=True), hidden_size=64, intermediate_size=128, num_layers=4,
                      noise_db=noise_db, verify=True)
    assert any("stay identical copies" in str(w.message) for w in caught) == (noise_db is None)
    return growth


def test_right_after_growth_every_copy_is_identical():
    model, plan, report = _grown(DEFAULT_NOISE_DB)
    assert report.passed and report.max_deviation <= 1e-5  # noise keeps the function exact
    divergence = copy_divergence(plan, model.state_dict())
    assert {s.space for s in divergence.spaces} == {"hidden", "ffn", "q", "kv"}
    assert divergence.all_identical  # noise sits on consumer columns only


def test_default_noise_makes_copies_diverge_under_training():
    model, plan, _ = _grown(DEFAULT_NOISE_DB)
    divergence = copy_divergence(plan, _train(model))
    for space in divergence.spaces:
        assert space.identical == 0 and space.in_use == 1.0, space
        assert space.minimum > 1e-4, space
    assert "not in use" not in divergence.table()


def test_ffn_copies_in_new_layers_diverge_too():
    """Hidden fixed, FFN and depth grown: the copies inside the new identity layers feed a zeroed
    down-projection, which carries cancelling noise, so they get different gradients as well."""
    growth = grow(tiny_model("llama", gqa=True), intermediate_size=128, num_layers=4, verify=True)
    assert growth.report.max_deviation <= 1e-5
    divergence = copy_divergence(growth.plan, _train(growth.model))
    ffn = next(s for s in divergence.spaces if s.space == "ffn")
    assert ffn.identical == 0 and ffn.minimum > 1e-4, ffn


def test_noise_off_copies_stay_identical_and_the_diagnostic_says_so():
    model, plan, _ = _grown(None)
    divergence = copy_divergence(plan, _train(model))
    assert divergence.all_identical
    for space in divergence.spaces:
        assert space.in_use == 0.0 and space.median == 0.0, space
    assert "the added width is not in use" in divergence.table()


def test_divergence_command_reads_a_trained_folder(tmp_path, kinherit_main, capsys):
    model, plan, _ = _grown(DEFAULT_NOISE_DB)
    model.save_pretrained(tmp_path / "grown")
    (tmp_path / "grown" / "growth.json").write_text(json.dumps({"plan": plan.to_dict()}))
    trained = tmp_path / "trained"
    trained.mkdir()
    state = _train(model)
    state.pop("lm_head.weight")  # tied: stored once, as save_pretrained does
    save_file({k: v.contiguous() for k, v in state.items()}, trained / "model.safetensors")
    code = kinherit_main(["divergence", str(trained), "--growth", str(tmp_path / "grown" / "growth.json")])
    out = capsys.readouterr().out
    assert code == 0 and "hidden" in out and "100.0%" in out and "not in use" not in out
    code = kinherit_main(["divergence", str(tmp_path / "grown")])
    out = capsys.readouterr().out
    assert code == 0 and "the added width is not in use" in out  # untrained: still exact copies
    code = kinherit_main(["divergence", str(trained)])
    assert code == 2 and "pass --growth" in capsys.readouterr().err


def test_fused_expert_copies_start_identical_and_diverge_under_training():
    """Mixtral's experts are 3-D (E, 2·ffn, d) / (E, d, ffn): the noise on them cancels (divergence 0 at growth)
    and still steers every expert unit's copies apart once trained."""
    growth = grow(tiny_model("mixtral", gqa=True), hidden_size=64, num_layers=4, noise_db=DEFAULT_NOISE_DB, verify=True)
    model, plan, report = growth
    assert report.passed and report.max_deviation <= 1e-5
    assert copy_divergence(plan, model.state_dict()).all_identical
    trained = copy_divergence(plan, _train(model))
    assert {s.space for s in trained.spaces} == {"hidden", "ffn", "q", "kv"}
    for space in trained.spaces:
        assert space.identical == 0 and space.minimum > 1e-4, space
