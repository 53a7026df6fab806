"""Staged training: growth inside one `pretrain` run — exact at each boundary, FLOPs counted per stage,
AdamW's state mapped through the growth, exact resume on both sides of a boundary, one-line errors."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
import yaml
from safetensors.torch import load_file
from transformers import LlamaConfig, LlamaForCausalLM

from kinherit.config import validate_config
from kinherit.errors import KinheritError
from kinherit.grow.api import grow
from kinherit.hf_folder import load_lm
from kinherit.metrics.flops import flops_per_token
from kinherit.metrics.log import read_metrics
from kinherit.train.optimizer_growth import lr_scales, map_adam_state
from kinherit.train.pretrain import pretrain
from tests.conftest import CrashAt

STAGES = [{"at_step": 3, "num_layers": 2}, {"at_step": 6, "hidden_size": 64, "num_heads": 8, "intermediate_size": 128}]
TOKENS_PER_STEP = 8 * 32


def _staged(tiny_run, out, growth=STAGES, **train):  # noqa: ANN001, ANN202
    config = tiny_run(out, **{"max_steps": 9, "save_steps": 3, "eval_steps": 3, **train})
    config["model"].update(num_layers=1)
    config["growth"] = growth
    return config


@pytest.fixture(scope="module")
def staged_run(tmp_path_factory, cache_dir):  # noqa: ANN001, ANN201
    from tests.conftest import _tiny_run

    out = tmp_path_factory.mktemp("staged") / "run"
    config = _staged(lambda o, **t: _tiny_run(o, cache_dir, "llama", **t), out)
    return validate_config(config), pretrain(validate_config(config))


def test_each_growth_keeps_the_loss_and_the_run_ends_at_the_last_shape(staged_run):
    config, result = staged_run
    events = read_metrics(result.out / "metrics.jsonl")
    growths = [e for e in events if "growth" in e]
    assert [(e["step"], e["growth"]) for e in growths] == [(3, 1), (6, 2)]
    assert all(abs(e["held_loss_change"]) <= 1e-4 for e in growths)
    model = load_lm(result.model_dir)
    assert (model.config.hidden_size, model.config.num_hidden_layers, model.config.num_attention_heads) == (64, 2, 8)
    assert json.loads((result.model_dir / "growth.json").read_text())["plan"]["target_shape"]["hidden"] == 64
    for stage in (1, 2):
        record = json.loads((result.out / "growth" / f"stage-{stage}.json").read_text())
        assert record["report"]["passed"] and abs(record["loss_after"] - record["loss_before"]) <= 1e-4
    train = [e for e in events if "loss" in e]
    assert [e.get("stage", 0) for e in train] == [0] * 3 + [1] * 3 + [2] * 3  # a continuous log, one step each


def test_flops_are_counted_at_the_size_of_each_step(staged_run):
    """flops(t) = Σ_stages steps × tokens/step × training FLOPs per token at that stage's size."""
    config, result = staged_run
    per_token = []
    for layers, hidden, heads, ffn in ((1, 32, 4, 64), (2, 32, 4, 64), (2, 64, 8, 128)):
        cfg = LlamaConfig(
            vocab_size=512,
            hidden_size=hidden,
            num_hidden_layers=layers,
            num_attention_heads=heads,
            num_key_value_heads=heads,
            intermediate_size=ffn,
            tie_word_embeddings=True,
        )
        with torch.device("meta"):
            per_token.append(flops_per_token(LlamaForCausalLM(cfg), 32).train)
    events = {e["step"]: e for e in read_metrics(result.out / "metrics.jsonl") if "loss" in e}
    expected = 3 * TOKENS_PER_STEP * (per_token[0] + per_token[1] + per_token[2])
    assert events[9]["flops"] == pytest.approx(expected, rel=1e-12)
    assert events[4]["flops"] == pytest.approx(TOKENS_PER_STEP * (3 * per_token[0] + per_token[1]), rel=1e-12)


def test_divergence_reads_the_final_model_and_its_copies_have_diverged(staged_run):
    from kinherit.grow import copy_divergence

    _, result = staged_run
    report = copy_divergence(result.model_dir / "growth.json", load_file(result.model_dir / "model.safetensors"))
    assert {s.space for s in report.spaces} >= {"hidden", "ffn"} and not report.all_identical


@pytest.mark.parametrize("crash", ["before", "during", "after"])
def test_resume_on_either_side_of_a_growth_is_exact(tmp_path, tiny_run, staged_run, crash, monkeypatch):
    """Killed before the growth at step 3 (at step 3, resumed from checkpoint-2), during it (checkpoint-3 still
    small) or after it (at step 5), then --resume: the same weights and logged losses as the uninterrupted run."""
    import kinherit.train.pretrain as module

    _, reference = staged_run
    raw = _staged(tiny_run, tmp_path / "run", save_steps=1)
    with pytest.raises(RuntimeError, match="simulated crash"):
        if crash == "during":
            monkeypatch.setattr(
                module, "grow_checkpoint", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("simulated crash"))
            )
            pretrain(validate_config(raw))
        else:
            pretrain(validate_config(raw), callbacks=[CrashAt(3 if crash == "before" else 5)])
    monkeypatch.undo()
    pretrain(validate_config(raw), resume=True)
    expected, resumed = (
        load_file(reference.model_dir / "model.safetensors"),
        load_file(tmp_path / "run" / "model" / "model.safetensors"),
    )
    assert expected.keys() == resumed.keys()
    for key in expected:
        torch.testing.assert_close(resumed[key], expected[key], rtol=0, atol=0)
    losses = lambda out: [(e["step"], e["loss"]) for e in read_metrics(out / "metrics.jsonl") if "loss" in e]  # noqa: E731
    assert losses(tmp_path / "run") == losses(reference.out)


def test_a_stage_that_cannot_grow_is_refused_before_any_data_is_read(tmp_path, tiny_run, monkeypatch):
    import kinherit.train.pretrain as module

    monkeypatch.setattr(module, "prepare_corpus", lambda *a, **k: pytest.fail("data was read"))
    bad = _staged(tiny_run, tmp_path / "run", growth=[{"at_step": 3, "hidden_size": 16}])
    with pytest.raises(KinheritError, match=r"growth\[0\] cannot grow the model"):
        pretrain(validate_config(bad))


@pytest.mark.parametrize(
    "growth, message",
    [
        ([{"at_step": 5}, {"at_step": 4}], "increasing steps"),
        ([{"at_step": 9}], "increasing steps"),
        ([{"at_step": 1.5}], "fraction"),
        (
            [{"at_step": "atuo"}],
            r"growth\.0\.at_step: 'atuo' is not a step \(int ≥ 1\), a fraction of train\.max_steps in \(0, 1\) or auto",
        ),
        ([{"at_step": 3, "optimizer_state": "keep"}], "optimizer_state"),
        ([{"at_step": 3, "lr_policy": "rewarm", "rewarm_steps": 0}], r"growth\[0\]\.rewarm_steps"),
    ],
)
def test_stage_timing_and_options_are_checked(tmp_path, tiny_run, growth, message):
    with pytest.raises(KinheritError, match=message):
        validate_config(_staged(tiny_run, tmp_path / "run", growth=growth))


def _small_and_grown(layers: int = 2):  # noqa: ANN202
    torch.manual_seed(0)
    cfg = LlamaConfig(
        vocab_size=50,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=32,
        tie_word_embeddings=True,
    )
    small = LlamaForCausalLM(cfg)
    for p in small.parameters():
        p.data.normal_(0, 0.2)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        growth = grow(
            small,
            hidden_size=32,
            intermediate_size=64,
            num_heads=4,
            num_kv_heads=4,
            num_layers=layers,
            noise_db=None,
            verify=False,
        )
    return small, growth


def _grads(model, ids):  # noqa: ANN001, ANN202
    model.zero_grad()
    model(input_ids=ids, labels=ids).loss.backward()
    return {n: p.grad.clone() for n, p in model.named_parameters()}


def test_mapped_moments_are_the_grown_models_gradient():
    """With m = g and v = g² of the small model, the mapped state is the grown model's gradient (and its square)
    at the grown point, for every parameter but those of new layers (which start fresh)."""
    small, growth = _small_and_grown(layers=3)
    ids = torch.randint(0, 50, (2, 12), generator=torch.Generator().manual_seed(1))
    small_g, grown_g = _grads(small, ids), _grads(growth.model, ids)
    state = {n: {"step": torch.tensor(7.0), "exp_avg": g, "exp_avg_sq": g**2} for n, g in small_g.items()}
    names = {n for n, _ in growth.model.named_parameters()}
    mapped = map_adam_state(growth.plan, state, {n: p.detach() for n, p in small.named_parameters()}, names)
    assert set(grown_g) - set(mapped) == {n for n in names if ".layers.1." in n}  # the new (zeroed) layer
    for name, moments in mapped.items():
        torch.testing.assert_close(moments["exp_avg"], grown_g[name], rtol=1e-4, atol=1e-7)
        torch.testing.assert_close(moments["exp_avg_sq"], grown_g[name] ** 2, rtol=1e-4, atol=1e-10)
        assert float(moments["step"]) == 7.0


def _adam_step(model, ids, scales=None, state=None):  # noqa: ANN001, ANN202
    """One AdamW step (lr 1e-2, wd 0.1, no clipping), per-parameter LR scales, optional initial state."""
    params = dict(model.named_parameters())
    groups = [
        {"params": [p], "lr": 1e-2 * (scales or {}).get(n, 1.0), "weight_decay": 0.1 / (scales or {}).get(n, 1.0)}
        for n, p in params.items()
    ]
    optimizer = torch.optim.AdamW(groups, eps=1e-12)
    for name, moments in (state or {}).items():
        optimizer.state[params[name]] = {k: v.clone() for k, v in moments.items()}
    model.zero_grad()
    model(input_ids=ids, labels=ids).loss.backward()
    optimizer.step()
    return optimizer


def test_with_growth_lr_scaling_the_first_update_is_the_grown_image_of_the_small_models():
    """Invariant: noise off, state mapped, LR·a and weight decay/a per tensor — one AdamW step of the grown model
    lands on the grown image of one step of the small model (width growth ×2). Without the scaling, tensors that
    read a duplicated space move 2× as far as the image."""
    small, growth = _small_and_grown()
    ids = torch.randint(0, 50, (2, 12), generator=torch.Generator().manual_seed(1))
    names = {n for n, _ in growth.model.named_parameters()}
    source = {n: p.detach().clone() for n, p in small.named_parameters()}
    optimizer = _adam_step(small, ids)  # builds the small model's state (step 1)
    small_state = {n: optimizer.state[p] for n, p in small.named_parameters()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        grown_before = grow(
            small, hidden_size=32, intermediate_size=64, num_heads=4, num_kv_heads=4, noise_db=None, verify=False
        )
    mapped = map_adam_state(grown_before.plan, small_state, {n: p.detach() for n, p in small.named_parameters()}, names)
    scales = lr_scales(grown_before.plan, source, names, {})
    assert scales["model.layers.0.mlp.down_proj.weight"] == pytest.approx(0.5)
    assert scales["model.embed_tokens.weight"] == pytest.approx(1.0)
    grown_scaled = grown_before.model
    grown_plain = grow(
        small, hidden_size=32, intermediate_size=64, num_heads=4, num_kv_heads=4, noise_db=None, verify=False
    ).model
    _adam_step(small, ids, state=small_state)  # the small model's second step
    _adam_step(grown_scaled, ids, scales, mapped)
    _adam_step(grown_plain, ids, None, mapped)
    image = grow(
        small, hidden_size=32, intermediate_size=64, num_heads=4, num_kv_heads=4, noise_db=None, verify=False
    ).model
    target = dict(image.named_parameters())
    with torch.no_grad():
        worst_scaled = max(float((p - target[n]).abs().max()) for n, p in grown_scaled.named_parameters())
        down = "model.layers.0.mlp.down_proj.weight"
        plain_err = float((dict(grown_plain.named_parameters())[down] - target[down]).abs().max())
    assert worst_scaled < 1e-6
    assert plain_err > 1e-4  # without the scaling, a consumer of duplicated units overshoots the image


@pytest.mark.slow  # 45 s; the single-process cases above cover the growth itself
def test_two_processes_grow_in_step(tmp_path, tiny_run, torchrun_pretrain):
    """DDP (2 processes, gloo) across a growth: one growth record, the final shape, the loss kept at the boundary."""
    raw = _staged(tiny_run, tmp_path / "ddp", growth=STAGES[:1], max_steps=4, per_device_train_batch_size=4)
    torchrun_pretrain(raw)
    events = read_metrics(tmp_path / "ddp" / "metrics.jsonl")
    assert [e["growth"] for e in events if "growth" in e] == [1]
    assert abs(next(e for e in events if "growth" in e)["held_loss_change"]) <= 1e-4
    assert load_lm(tmp_path / "ddp" / "model").config.num_hidden_layers == 2
    assert max(e["step"] for e in events) == 4 and {
        e.get("stage") for e in events if "loss" in e and e["step"] > 3
    } == {1}


def test_report_compares_a_staged_run_with_scratch_counting_every_flop(tmp_path, tiny_run, staged_run):
    from kinherit.cli import main
    from kinherit.metrics.runs import load_run

    _, staged = staged_run
    raw = tiny_run(tmp_path / "scratch", max_steps=9, save_steps=9, eval_steps=3)
    raw["model"].update(hidden_size=64, num_layers=2, num_heads=8, intermediate_size=128)
    scratch = pretrain(validate_config(raw))
    assert [g["growth"] for g in load_run(staged.out).growths] == [1, 2]
    assert (
        main(
            [
                "report",
                str(scratch.out),
                str(staged.out),
                "--baseline",
                str(scratch.out),
                "--out",
                str(tmp_path / "report"),
            ]
        )
        == 0
    )
    results = json.loads((tmp_path / "report" / "results.json").read_text())
    text = json.dumps(results)
    assert staged.out.name in text and (tmp_path / "report" / "val_loss_vs_flops.png").is_file()
    staged_flops = max(e["flops"] for e in read_metrics(staged.out / "metrics.jsonl") if "flops" in e)
    scratch_flops = max(e["flops"] for e in read_metrics(scratch.out / "metrics.jsonl"))
    assert staged_flops < 0.6 * scratch_flops  # the small stages cost less; nothing of them is sunk


def test_rewarm_multiplies_the_schedule_from_zero_back_to_one_after_its_growth(tmp_path, tiny_run):
    from kinherit.train.staged import Stages

    growth = [
        {"at_step": 3, "num_layers": 2, "lr_policy": "rewarm", "rewarm_steps": 2},
        {"at_step": 6, "num_layers": 3},
    ]
    stages = Stages.of(validate_config(_staged(tiny_run, tmp_path / "run", growth=growth)))
    assert stages.rewarm(0) is None  # the first stage follows the run's schedule
    rewarm = stages.rewarm(1)
    assert [rewarm(t) for t in (2, 3, 4, 5, 8)] == [1.0, 0.5, 1.0, 1.0, 1.0]  # m(t) = min(1, (t − 3 + 1)/2) from step 3


def test_auto_grows_stage_k_of_n_at_four_fifths_of_k_over_n(tmp_path, tiny_run):
    """`at_step: auto`: stage k of n at round(0.8·k/n·max_steps): 0.4 and 0.8 of the run for two stages."""
    from kinherit.train.staged import Stages

    two = [{"at_step": "auto", "num_layers": 2}, {"at_step": "auto", "num_layers": 3}]
    assert Stages.of(validate_config(_staged(tiny_run, tmp_path / "a", growth=two, max_steps=100))).steps == (40, 80)
    assert Stages.of(validate_config(_staged(tiny_run, tmp_path / "b", growth=two[:1], max_steps=9))).steps == (7,)
    with pytest.raises(KinheritError, match="increasing steps"):  # an explicit step after an auto one must come later
        validate_config(
            _staged(tiny_run, tmp_path / "c", growth=[two[0], {"at_step": 30, "num_layers": 3}], max_steps=100)
        )


def test_a_staged_run_trains_at_the_learning_rate_a_grown_folder_at_growth_lr_factor_times_it(
    tmp_path, tiny_run, staged_run
):
    """The LR rule after growth: the staged run's LR is train.learning_rate × the cosine schedule λ (logged at step t:
    the LR step t trained with, λ(t − 1)); a folder that `kinherit grow` wrote gets growth_lr_factor × it; a staged
    run's final model (it trained after its growth) and a plain run do not; growth_lr_factor 1 keeps it."""
    from transformers.optimization import _get_cosine_schedule_with_warmup_lr_lambda as cosine

    from kinherit.train.staged import grown_learning_rate

    config, trained = staged_run
    logged = {e["step"]: e["learning_rate"] for e in read_metrics(trained.out / "metrics.jsonl") if "loss" in e}
    peak = config.train_args["learning_rate"]
    assert logged == pytest.approx(
        {t: peak * cosine(t - 1, num_warmup_steps=1, num_training_steps=9, num_cycles=0.5) for t in logged}, rel=1e-6
    )
    grown = tmp_path / "grown"
    grown.mkdir()
    (grown / "growth.json").write_text(json.dumps({"source": "small", "options": {}}))
    plain = tiny_run(tmp_path / "run")

    def rate(**update):  # noqa: ANN003, ANN202
        config = {**plain, **update}
        if "model" in update:
            config["data"] = {**plain["data"], "tokenizer": {"path": str(trained.model_dir)}}
        return grown_learning_rate(validate_config(config))

    assert rate() is None and grown_learning_rate(config) is None
    assert rate(model={"from": str(grown)}) == pytest.approx(6e-3)
    assert rate(model={"from": str(grown)}, growth_lr_factor=1.0) is None
    assert rate(model={"from": str(trained.model_dir)}) is None


def test_wsd_holds_the_peak_through_a_growth_and_decays_over_its_last_steps(tmp_path, tiny_run):
    """train.lr_scheduler_type warmup_stable_decay, num_decay_steps 1/3 of 9 = 3: the logged LR is the WSD formula
    before and after both growths (stable at the peak from the warm-up to step 6, cosine to 0 over 6..9; logged at step
    t: λ(t − 1))."""
    from transformers.optimization import _get_wsd_scheduler_lambda as wsd

    config = validate_config(
        _staged(
            tiny_run,
            tmp_path / "run",
            lr_scheduler_type="warmup_stable_decay",
            lr_scheduler_kwargs={"num_decay_steps": 1 / 3},
        )
    )
    assert config.train_args["lr_scheduler_kwargs"] == {"num_decay_steps": 3}
    result = pretrain(config)
    logged = {e["step"]: e["learning_rate"] for e in read_metrics(result.out / "metrics.jsonl") if "loss" in e}
    peak = config.train_args["learning_rate"]
    expected = {
        t: peak
        * wsd(
            t - 1,
            num_warmup_steps=1,
            num_stable_steps=5,
            num_decay_steps=3,
            warmup_type="linear",
            decay_type="cosine",
            min_lr_ratio=0,
            num_cycles=0.5,
        )
        for t in logged
    }
    assert logged == pytest.approx(expected, rel=1e-6)
    assert logged[3] == logged[5] == logged[7] == pytest.approx(peak)


@pytest.mark.parametrize(
    "kwargs, max_steps, expected",
    [
        ({}, 100, 20),
        ({"num_decay_steps": 0.5}, 100, 50),
        ({"num_decay_steps": 7}, 100, 7),
        ({"num_decay_steps": 1.5}, 100, "num_decay_steps 1.5 must be a step"),
        ({"num_decay_steps": 100}, 100, "leaves no stable phase"),
        ({}, -1, "needs train.max_steps"),
    ],
)
def test_wsd_decay_length_defaults_to_a_fifth_and_is_checked(tmp_path, tiny_run, kwargs, max_steps, expected):
    raw = tiny_run(
        tmp_path / "run",
        max_steps=max_steps,
        lr_scheduler_type="warmup_stable_decay",
        **({"lr_scheduler_kwargs": kwargs} if kwargs else {}),
    )
    if isinstance(expected, int):
        assert validate_config(raw).train_args["lr_scheduler_kwargs"]["num_decay_steps"] == expected
    else:
        with pytest.raises(KinheritError, match=expected):
            validate_config(raw)


def test_a_staged_run_builds_one_trainer_per_stage_and_none_to_grow(tmp_path, tiny_run, monkeypatch):
    """The growth is a transform of the training state: no probe trainer to learn the parameter order, none to
    write the optimizer (three stages: three trainers, one per stage)."""
    import transformers

    built = []
    original = transformers.Trainer.__init__
    monkeypatch.setattr(
        transformers.Trainer, "__init__", lambda self, *a, **k: (built.append(1), original(self, *a, **k))[1]
    )
    pretrain(validate_config(_staged(tiny_run, tmp_path / "run")))
    assert len(built) == 3


def test_a_dense_to_moe_stage_trains_through_its_growth_and_says_so(tmp_path, tiny_run, capsys):
    """The upcycled model's loss includes the router auxiliary loss; the growth compares the LM loss (exact), the
    stage trains, and the console shows one line for the growth."""
    result = pretrain(
        validate_config(_staged(tiny_run, tmp_path / "run", growth=[{"at_step": 3, "num_experts": 4}], max_steps=6))
    )
    growth = [e for e in read_metrics(result.out / "metrics.jsonl") if "growth" in e]
    assert len(growth) == 1 and abs(growth[0]["held_loss_change"]) <= 1e-4
    assert load_lm(result.model_dir).config.num_local_experts == 4
    train = [e for e in read_metrics(result.out / "metrics.jsonl") if "loss" in e]
    assert [e["step"] for e in train] == list(range(1, 7)) and all(e["aux_loss"] > 0 for e in train[3:])
    lines = [line for line in capsys.readouterr().out.splitlines() if "grew" in line]
    assert len(lines) == 1 and lines[0].startswith("step 3: grew dense → 4 experts") and "held-loss change" in lines[0]


def test_the_growth_time_is_counted_in_time_s(staged_run):
    _, result = staged_run
    events = read_metrics(result.out / "metrics.jsonl")
    for i, event in enumerate(events):
        if "growth" in event:
            before = max(e.get("time_s", 0.0) for e in events[:i])
            after = min(e["time_s"] for e in events[i + 1 :] if "time_s" in e)
            assert before < event["time_s"] <= after


def test_a_resume_keeps_the_growth_steps_the_run_recorded(tmp_path, tiny_run):
    """at_step 0.5 of 12 steps grows at 6. Killed at step 4 and resumed with max_steps 24, it still grows at 6
    (the resolved step is recorded when the run starts); resumed with max_steps 6 it is refused in one line."""
    raw = _staged(tiny_run, tmp_path / "run", growth=[{"at_step": 0.5, "num_layers": 2}], max_steps=12, save_steps=2)
    with pytest.raises(RuntimeError, match="simulated crash"):
        pretrain(validate_config(raw), callbacks=[CrashAt(4)])
    recorded = yaml.safe_load((tmp_path / "run" / "config.resolved.yaml").read_text())
    assert recorded["growth"][0]["at_step"] == 6 and isinstance(recorded["growth"][0]["rewarm_steps"], int)
    shorter = {**raw, "train": {**raw["train"], "max_steps": 6}}
    with pytest.raises(
        KinheritError, match=r"train\.max_steps=6 would drop growth\[0\], which this run recorded at step 6"
    ):
        pretrain(validate_config(shorter), resume=True)
    longer = {**raw, "train": {**raw["train"], "max_steps": 24}}
    pretrain(validate_config(longer), resume=True)
    assert [e["step"] for e in read_metrics(tmp_path / "run" / "metrics.jsonl") if "growth" in e] == [6]


@pytest.mark.parametrize(
    "train, message",
    [
        ({"fsdp": "full_shard"}, r"growth: is not supported with train\.fsdp"),
        ({"deepspeed": "ds.json"}, r"growth: is not supported with train\.deepspeed"),
        ({"lr_scheduler_type": "reduce_lr_on_plateau"}, "reduce_lr_on_plateau is not: choose e.g. warmup_stable_decay"),
        ({"optim": "sgd"}, r"growth\[0\]\.optimizer_state: map carries AdamW's moments, and train\.optim sgd"),
    ],
)
def test_what_a_growth_cannot_carry_is_refused_in_one_line(tmp_path, tiny_run, train, message):
    with pytest.raises(KinheritError, match=message):
        validate_config(_staged(tiny_run, tmp_path / "run", growth=[{"at_step": 3, "num_layers": 2}], **train))


def test_another_optimizer_grows_with_a_fresh_state(tmp_path, tiny_run):
    config = validate_config(
        _staged(
            tiny_run,
            tmp_path / "run",
            growth=[{"at_step": 3, "num_layers": 2, "optimizer_state": "reset"}],
            optim="sgd",
            max_steps=5,
        )
    )
    assert pretrain(config).final_step == 5
