"""Dense → mixture of experts: exact upcycling (in memory and reloaded), the plan, linearity, the CLI, divergence."""

from __future__ import annotations

import json

import pytest
import torch
from test_divergence import _train
from tiny_models import VOCAB, tiny_model
from transformers import AutoModelForCausalLM, LlamaConfig

from kinherit.errors import KinheritError
from kinherit.grow import copy_divergence, grow, grow_folder, grow_map, load_plan, replay

TARGETS = {
    "llama": "MixtralForCausalLM",
    "mistral": "MixtralForCausalLM",
    "qwen2": "Qwen2MoeForCausalLM",
    "qwen3": "Qwen3MoeForCausalLM",
}


def test_every_family_with_an_upcycling_target_is_tested():
    """Walk the targets the family records declare (`FamilySpec.upcycle`): each needs a case here."""
    from kinherit.arch import FAMILIES
    from kinherit.grow.upcycle import MOE_TARGETS

    assert set(MOE_TARGETS) == {name for name, f in FAMILIES.items() if f.upcycle} == set(TARGETS)
    for name, target in MOE_TARGETS.items():
        assert target.architecture(FAMILIES[name].lm_head.architecture) == TARGETS[name]


def _ids() -> torch.Tensor:
    return torch.randint(0, VOCAB, (2, 12), generator=torch.Generator().manual_seed(5))  # (B, T)


@pytest.mark.parametrize("family", sorted(TARGETS))
@pytest.mark.parametrize(
    ("sizes", "tied", "router"),
    [
        ({}, True, "random"),
        ({"hidden_size": 64, "num_layers": 4}, False, "orthogonal"),  # 2x width (GQA kept) + 2x depth, untied
        ({"intermediate_size": 96}, True, "zero"),
    ],
    ids=["same-size", "2x-width-2x-depth", "ffn-1.5x"],
)
def test_upcycling_is_exact_in_memory_and_reloaded(save_tiny, tmp_path, family, sizes, tied, router):
    src = save_tiny(family, tied=tied, gqa=True)
    width = {"width": "net2net"} if "intermediate_size" in sizes else {}
    report = grow_folder(src, tmp_path / "moe", num_experts=4, experts_per_token=2, router=router, **sizes, **width)
    assert report.exact_claimed and report.passed
    assert {c.model for c in report.comparisons} == {"in-memory", "reloaded"}
    assert report.max_deviation <= 1e-5, report.table()

    moe = AutoModelForCausalLM.from_pretrained(str(tmp_path / "moe")).eval()  # the Auto class loads it
    assert type(moe).__name__ == TARGETS[family]
    assert moe.config.num_experts_per_tok == 2 and moe.config.output_router_logits
    experts = moe.model.layers[0].mlp.experts
    assert experts.gate_up_proj.shape[0] == 4
    torch.testing.assert_close(experts.gate_up_proj[1], experts.gate_up_proj[0], rtol=0, atol=0)  # copies
    router_weight = moe.model.layers[0].mlp.gate.weight
    assert (router_weight.abs().max() == 0) == (router == "zero")
    dense = AutoModelForCausalLM.from_pretrained(str(src)).eval()
    with torch.no_grad():
        torch.testing.assert_close(moe(_ids()).logits, dense(_ids()).logits, rtol=0, atol=1e-5)


@pytest.mark.parametrize("family", ["qwen2", "qwen3"])
def test_qwen_targets_renormalise_the_top_k_and_would_not_be_exact_without(family):
    """The quirk row: qwen*_moe default to `norm_topk_prob: false`; the upcycled target sets it, and turning it
    back off scales every expert's output by the selected probability mass (≈ k/E), which verification sees."""
    growth = grow(tiny_model(family, gqa=True), num_experts=4, experts_per_token=2)
    assert growth.model.config.norm_topk_prob is True and growth.report.max_deviation <= 1e-5
    growth.model.config.norm_topk_prob = False
    for layer in growth.model.model.layers:
        layer.mlp.gate.norm_topk_prob = False
    dense = tiny_model(family, gqa=True)
    with torch.no_grad():
        deviation = (growth.model(_ids()).logits - dense(_ids()).logits).abs().max()
    assert deviation > 1e-2


def test_qwen2_moe_shared_expert_carries_half_the_mlp():
    growth = grow(tiny_model("qwen2", gqa=True), num_experts=4, experts_per_token=2)
    dense, block = tiny_model("qwen2", gqa=True).model.layers[0].mlp, growth.model.model.layers[0].mlp
    torch.testing.assert_close(block.shared_expert.down_proj.weight, dense.down_proj.weight, rtol=0, atol=0)
    assert block.shared_expert_gate.weight.abs().max() == 0  # σ(0) = ½
    torch.testing.assert_close(block.experts.down_proj[2], dense.down_proj.weight / 2, rtol=0, atol=0)
    ffn = dense.gate_proj.weight.shape[0]
    torch.testing.assert_close(block.experts.gate_up_proj[3, :ffn], dense.gate_proj.weight, rtol=0, atol=0)
    torch.testing.assert_close(block.experts.gate_up_proj[3, ffn:], dense.up_proj.weight, rtol=0, atol=0)


def test_orthogonal_router_rows_are_orthogonal_with_the_random_row_norm():
    growth = grow(tiny_model("llama"), num_experts=4, experts_per_token=2, router="orthogonal", router_std=0.05)
    w = growth.model.model.layers[1].mlp.gate.weight.detach()  # (E, H)
    gram = w @ w.T
    expected = 0.05**2 * w.shape[1]  # E||row||² of an N(0, 0.05²) row
    torch.testing.assert_close(gram, torch.eye(4) * expected, rtol=0, atol=1e-6)


def test_expert_noise_is_reported_not_claimed_exact(save_tiny, tmp_path):
    """No noise on expert copies cancels for every top-k subset: --expert-noise-db is a measured deviation."""
    report = grow_folder(
        save_tiny("llama"), tmp_path / "noisy", num_experts=4, experts_per_token=2, expert_noise_db=20.0
    )
    assert not report.exact_claimed and report.passed  # reported, and the folder is written
    assert 1e-4 < report.max_deviation < 1.0
    plan = load_plan(tmp_path / "noisy")
    assert plan.upcycle.expert_noise_db == 20.0 and plan.upcycle.expert_noise_std
    state = AutoModelForCausalLM.from_pretrained(str(tmp_path / "noisy")).state_dict()
    experts = state["model.layers.0.mlp.experts.down_proj"]
    assert (experts[0] - experts[1]).abs().max() > 0  # the copies differ from the start


@pytest.mark.parametrize(
    ("family", "sizes", "drop"), [("llama", {"hidden_size": 64, "num_layers": 4}, 0.0), ("qwen2", {}, 0.25)]
)
def test_grow_map_is_linear_through_upcycling(family, sizes, drop):
    """grow(A + D) = grow(A) + grow_map(D): the router init, the noise and drop-upcycling's fresh units are additive
    terms outside G (G zeroes the dropped units: W' = M⊙W + (1−M)⊙R)."""
    a = tiny_model(family, tied=False, gqa=True)
    gen = torch.Generator().manual_seed(3)
    delta = {k: 0.05 * torch.randn(v.shape, generator=gen) for k, v in a.state_dict().items()}
    tuned = {k: v + delta[k] for k, v in a.state_dict().items()}
    grown_a, plan, _ = grow(a, num_experts=4, experts_per_token=2, verify=False, drop_upcycling=drop, **sizes)
    grown_tuned = replay(plan, tuned)
    mapped = grow_map(plan, delta)
    base = grown_a.state_dict()
    assert set(mapped) == set(grown_tuned)
    for key, value in grown_tuned.items():
        torch.testing.assert_close(value, base[key] + mapped[key], rtol=0, atol=1e-5)
    assert all(mapped[k].abs().max() == 0 for k in mapped if k.endswith("mlp.gate.weight"))  # the router is not in G
    # a partial delta (only the MLP's up projections): the fused gate/up tensor gets a zero gate half
    partial = grow_map(plan, {k: v for k, v in delta.items() if ".mlp.up_proj." in k})
    fused = partial["model.layers.0.mlp.experts.gate_up_proj"]
    ffn = fused.shape[1] // 2
    assert fused[:, :ffn].abs().max() == 0 and fused[:, ffn:].abs().max() > 0
    dead_rows = (fused[:, ffn:].abs().amax(-1) == 0).sum(-1)  # per expert: the dropped units get no delta
    assert dead_rows.tolist() == [round(drop * ffn)] * 4


def test_plan_round_trips_through_growth_json(save_tiny, tmp_path):
    src = save_tiny("llama")
    grow_folder(src, tmp_path / "moe", num_experts=4, experts_per_token=1, router="orthogonal", seed=7)
    recorded = json.loads((tmp_path / "moe" / "growth.json").read_text())
    assert recorded["plan"]["upcycle"]["architecture"] == "MixtralForCausalLM"
    plan = load_plan(tmp_path / "moe")
    assert plan.upcycle.experts_per_token == 1 and plan.upcycle.router == "orthogonal"
    again = replay(plan, AutoModelForCausalLM.from_pretrained(str(src)).state_dict())
    saved = AutoModelForCausalLM.from_pretrained(str(tmp_path / "moe")).state_dict()
    for key, value in again.items():
        torch.testing.assert_close(value, saved[key], rtol=0, atol=0)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--num-experts", "4", "--experts-per-token", "5"],
            "--experts-per-token must be between 1 and --num-experts 4",
        ),
        (["--num-experts", "1"], "--num-experts must be at least 2"),
        (["--experts-per-token", "2"], "need --num-experts"),
        (["--router", "zero"], "need --num-experts"),
        (["--num-experts", "4", "--drop-upcycling", "1.5"], "--drop-upcycling must be in [0, 1)"),
    ],
)
def test_bad_upcycling_options_are_one_line_errors(save_tiny, tmp_path, kinherit_main, capsys, args, message):
    code = kinherit_main(["grow", str(save_tiny("llama")), str(tmp_path / "out"), *args])
    errors = [line for line in capsys.readouterr().err.splitlines() if line.startswith("kinherit")]
    assert code == 2 and len(errors) == 1 and message in errors[0], errors
    assert not (tmp_path / "out").exists()


def test_families_without_a_moe_target_or_with_mlp_biases_are_refused(save_tiny, tmp_path, kinherit_main, capsys):
    code = kinherit_main(["grow", str(save_tiny("gpt2")), str(tmp_path / "out"), "--num-experts", "4"])
    assert code == 2 and "unknown upcycling source family 'gpt2'" in capsys.readouterr().err
    biased = tiny_model(
        "llama",
        config=LlamaConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=4,
            vocab_size=VOCAB,
            mlp_bias=True,
        ),
    )
    with pytest.raises(KinheritError, match="experts of the target have no MLP biases"):
        grow(biased, num_experts=4)
    biased = tiny_model(
        "llama",
        config=LlamaConfig(
            hidden_size=32,
            intermediate_size=64,
            num_hidden_layers=1,
            num_attention_heads=4,
            vocab_size=VOCAB,
            attention_bias=True,
        ),
    )
    with pytest.raises(KinheritError, match="attention biases into mixtral"):
        grow(biased, num_experts=4)


def test_cli_upcycles_a_llama_into_a_mixtral(save_tiny, tmp_path, kinherit_main, capsys):
    code = kinherit_main(
        [
            "grow",
            str(save_tiny("llama")),
            str(tmp_path / "moe"),
            "--num-experts",
            "4",
            "--experts-per-token",
            "2",
            "--hidden-size",
            "64",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and "upcycled to MixtralForCausalLM: 4 experts, top-2, router=random" in out and "PASS" in out


def test_expert_divergence_zero_after_upcycling_positive_after_training():
    growth = grow(tiny_model("llama", gqa=True), num_experts=4, experts_per_token=2)
    fresh = copy_divergence(growth.plan, growth.model.state_dict())
    assert len(fresh.experts) == 2 and fresh.all_identical
    assert all(e.identical_pairs == 6 and e.copies == 3 and e.median == 0.0 for e in fresh.experts)
    assert "every expert is still an identical copy" in fresh.table()
    trained = copy_divergence(growth.plan, _train(growth.model))
    for layer in trained.experts:  # the random router sends tokens to different experts
        assert layer.identical_pairs == 0 and layer.copies == 0 and layer.minimum > 1e-3, layer
    assert "identical copy" not in trained.table()


def test_experts_that_always_see_the_same_tokens_stay_copies():
    """k = E with a zero router that never moves: every expert gets every token with weight 1/E, hence the same
    gradient, and AdamW keeps them identical; the diagnostic says so."""
    growth = grow(tiny_model("llama", gqa=True), num_experts=4, experts_per_token=4, router="zero")
    growth.model.config.output_router_logits = False
    for layer in growth.model.model.layers:
        layer.mlp.gate.weight.requires_grad_(False)
    report = copy_divergence(growth.plan, _train(growth.model))
    assert all(e.copies == 3 and e.identical_pairs == 6 for e in report.experts), report.table()
    assert "every expert is still an identical copy" in report.table()


def test_divergence_command_reports_experts(save_tiny, tmp_path, kinherit_main, capsys):
    grow_folder(save_tiny("qwen2"), tmp_path / "moe", num_experts=4, experts_per_token=2)
    code = kinherit_main(["divergence", str(tmp_path / "moe")])
    out = capsys.readouterr().out
    assert code == 0 and "model.layers.1.mlp." in out and "every expert is still an identical copy" in out


@pytest.mark.parametrize("family", ["llama", "qwen2", "qwen3"])
def test_an_upcycled_folder_is_an_ordinary_moe_family_member_and_grows_on_exactly(save_tiny, tmp_path, family):
    grow_folder(save_tiny(family, gqa=True), tmp_path / "moe", num_experts=4, experts_per_token=2)
    report = grow_folder(tmp_path / "moe", tmp_path / "wider", hidden_size=64, num_layers=4)
    assert report.family == {"llama": "mixtral", "qwen2": "qwen2_moe", "qwen3": "qwen3_moe"}[family]
    assert report.exact_claimed and report.max_deviation <= 1e-5


def test_drop_upcycling_reinitialises_a_share_of_every_expert_and_reports_the_deviation(save_tiny, tmp_path):
    """Drop-Upcycling (Nakamura et al. 2025): each expert re-draws round(r·F) FFN units with the dense weights'
    statistics, so the experts differ from the start; not exact, the deviation is reported."""
    src = save_tiny("qwen3", gqa=True)
    report = grow_folder(src, tmp_path / "drop", num_experts=4, experts_per_token=2, drop_upcycling=0.25)
    assert not report.exact_claimed and report.passed and 0.05 < report.max_deviation < 5.0
    plan = load_plan(tmp_path / "drop")
    assert plan.upcycle.drop_ratio == 0.25 and len(plan.upcycle.drop_stats) == 6  # gate/up/down of 2 layers
    model = AutoModelForCausalLM.from_pretrained(str(tmp_path / "drop"))
    divergence = copy_divergence(plan, model.state_dict())
    assert all(e.copies == 0 and e.minimum > 0.1 for e in divergence.experts), divergence.table()
    dense = AutoModelForCausalLM.from_pretrained(str(src)).model.layers[0].mlp
    experts = model.model.layers[0].mlp.experts.down_proj  # (E, H, F)
    same = (experts == dense.down_proj.weight).all(0)  # (F,) columns every expert kept
    assert int(same.sum()) >= experts.shape[2] - 4 * round(0.25 * experts.shape[2])
