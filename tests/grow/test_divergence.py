"""Symmetry breaking: with the default noise the copies of duplicated units drift apart under training;
with noise off they stay identical under AdamW + weight decay + clipping, and the diagnostic says so."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
from safetensors.torch import save_file
from tiny_models import VOCAB, tiny_model

from kinherit.arch import FAMILIES
from kinherit.grow import DEFAULT_NOISE_DB, copy_divergence, grow


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
        growth = grow(
            tiny_model("llama", gqa=True),
            hidden_size=64,
            intermediate_size=128,
            num_layers=4,
            noise_db=noise_db,
            verify=True,
        )
    assert any("stay identical copies" in str(w.message) for w in caught) == (noise_db is None)
    return growth


def test_right_after_growth_every_copy_is_identical():
    model, plan, report = _grown(DEFAULT_NOISE_DB)
    assert report.passed and report.max_deviation <= 1e-5  # noise keeps the function exact
    divergence = copy_divergence(plan, model.state_dict())
    assert {s.space for s in divergence.spaces} == {"hidden", "ffn", "q", "kv"}
    assert divergence.all_identical  # noise sits on consumer columns only


def test_divergence_right_after_a_default_grow_says_the_copies_diverge_in_training(
    save_tiny, tmp_path, kinherit_main, capsys
):
    """Not "turn on noise" when the noise is on: the copies are exact at initialisation by design."""
    out = tmp_path / "out"
    assert kinherit_main(["grow", str(save_tiny("llama", gqa=True)), str(out), "--hidden-size", "64"]) == 0
    capsys.readouterr()
    assert kinherit_main(["divergence", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"symmetry-breaking noise ({DEFAULT_NOISE_DB:g} dB) cancels on the copies" in printed
    assert "diverge in training" in printed and "--noise-db" not in printed


def test_divergence_without_noise_says_the_copies_never_diverge(save_tiny, tmp_path, kinherit_main, capsys):
    out = tmp_path / "out"
    assert (
        kinherit_main(["grow", str(save_tiny("llama", gqa=True)), str(out), "--hidden-size", "64", "--noise-db", "off"])
        == 0
    )
    capsys.readouterr()
    assert kinherit_main(["divergence", str(out)]) == 0
    assert (
        "without symmetry-breaking noise it never will be (grow with the default --noise-db)" in capsys.readouterr().out
    )


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


def test_divergence_command_reads_a_grown_moe_folder(tmp_path, capsys):
    """The saved folder holds transformers' per-expert on-disk layout; the command reads the fused tensors."""
    from kinherit.cli import main

    tiny_model("qwen3_moe", gqa=True).save_pretrained(tmp_path / "src")
    assert main(["grow", str(tmp_path / "src"), str(tmp_path / "grown"), "--hidden-size", "64"]) == 0
    capsys.readouterr()
    assert main(["divergence", str(tmp_path / "grown")]) == 0
    table = capsys.readouterr().out
    rows = {
        line.split()[0]: line.split()[1:3] for line in table.splitlines() if line.split()[:1] in (["ffn"], ["hidden"])
    }
    assert rows == {"hidden": ["32", "32"], "ffn": ["128", "128"]}  # (groups, identical): copies right after growth


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
    assert code == 0 and "exact when grown and diverge in training" in out  # untrained: still exact copies
    code = kinherit_main(["divergence", str(trained)])
    assert code == 2 and "pass --growth" in capsys.readouterr().err


@pytest.mark.parametrize("family", ["gpt_neox", "phi3", "olmo2"])
def test_fused_and_interleaved_layouts(family):
    """Fused (phi3: q|k|v, gate|up), per-head interleaved (gpt_neox: (heads, 3, head_dim)) and branch-norm
    (olmo2) layouts: every copy is identical right after growth (read in the right layout), the default
    noise makes every space drift apart under training, and without noise nothing drifts."""
    gqa = FAMILIES[family].config.kv_heads is not None
    grown = {}
    for noise in (DEFAULT_NOISE_DB, None):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            grown[noise] = grow(tiny_model(family, gqa=gqa, tied=False), hidden_size=64, num_layers=4, noise_db=noise)
        assert grown[noise].report.max_deviation <= 1e-5
        assert copy_divergence(grown[noise].plan, grown[noise].model.state_dict()).all_identical
    trained = copy_divergence(grown[DEFAULT_NOISE_DB].plan, _train(grown[DEFAULT_NOISE_DB].model))
    assert {s.space for s in trained.spaces} == {"hidden", "ffn", "q", "kv"}
    for space in trained.spaces:
        assert space.identical == 0 and space.minimum > 1e-4, space
    assert copy_divergence(grown[None].plan, _train(grown[None].model)).all_identical


def test_gemma_copies_diverge_behind_zeroed_post_norm_gains():
    """Gemma's new layers are zeroed through their post-sublayer norm gains (1 + w = 0), not their
    projections: the first step only moves those gains, after which the noisy consumer columns steer
    the copies apart in every space, the new layers included."""
    growth = grow(tiny_model("gemma2", gqa=True), hidden_size=64, intermediate_size=128, num_layers=4, verify=True)
    assert growth.report.max_deviation <= 1e-5
    state = growth.model.state_dict()
    assert torch.equal(state["model.layers.1.post_feedforward_layernorm.weight"], -torch.ones(64))
    assert copy_divergence(growth.plan, state).all_identical
    divergence = copy_divergence(growth.plan, _train(growth.model))
    for space in divergence.spaces:
        assert space.identical == 0 and space.minimum > 1e-4, space
