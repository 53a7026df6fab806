import json
import math

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer, Trainer, TrainerCallback

from kinherit.config import validate_config
from kinherit.errors import KinheritError
from kinherit.metrics.log import read_metrics
from kinherit.train.pretrain import pretrain
from kinherit.train.trainer import adds_router_loss
from tests.conftest import CrashAt


def _losses(out):
    return {e["step"]: e["loss"] for e in read_metrics(out / "metrics.jsonl") if "loss" in e}


def test_causal_run_writes_a_loadable_model_and_metrics(tmp_path, tiny_run):
    result = pretrain(validate_config(tiny_run(tmp_path / "run")))
    out = tmp_path / "run"
    model = AutoModelForCausalLM.from_pretrained(str(out / "model"))
    tokenizer = AutoTokenizer.from_pretrained(str(out / "model"))
    assert model.config.model_type == "llama" and len(tokenizer) <= model.config.vocab_size
    assert not (out / "model" / "training_args.bin").exists()
    events = read_metrics(out / "metrics.jsonl")
    train = [e for e in events if "loss" in e]
    evals = [e for e in events if "val_loss" in e]
    assert [e["step"] for e in train] == list(range(1, 9)) and [e["step"] for e in evals] == [0, 4, 8]
    tokens_per_step = 8 * 32
    for event in events:
        assert event["tokens"] == event["step"] * tokens_per_step
        assert event["flops"] == event["tokens"] * 3 * result_flops(model, 32)
    assert train[-1]["loss"] < train[0]["loss"]
    assert result.final_val_loss == evals[-1]["val_loss"] and math.isclose(
        evals[-1]["val_ppl"], math.exp(evals[-1]["val_loss"])
    )
    assert (out / "config.resolved.yaml").read_text().count("max_steps: 8") == 1
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint-4", "checkpoint-8"]


def result_flops(model, seq_len):
    from kinherit.metrics.flops import flops_per_token

    return flops_per_token(model, seq_len).forward


def test_masked_lm_run_for_bert(tmp_path, tiny_run):
    pretrain(validate_config(tiny_run(tmp_path / "bert", family="bert", max_steps=4, eval_steps=4)))
    model = AutoModelForMaskedLM.from_pretrained(str(tmp_path / "bert" / "model"))
    assert model.config.model_type == "bert"
    losses = _losses(tmp_path / "bert")
    assert all(math.isfinite(v) for v in losses.values())


def test_resume_after_a_crash_matches_an_uninterrupted_run(tmp_path, tiny_run):
    straight = tiny_run(tmp_path / "straight")
    straight["model"]["dropout"] = 0.1  # dropout draws from the RNG, which resume must restore
    pretrain(validate_config(straight))

    crashed = {**straight, "out": str(tmp_path / "crashed")}
    with pytest.raises(RuntimeError, match="simulated crash"):
        pretrain(validate_config(crashed), callbacks=[CrashAt(6)])
    assert sorted(p.name for p in (tmp_path / "crashed" / "checkpoints").iterdir()) == ["checkpoint-4"]
    pretrain(validate_config(crashed), resume=True)

    expected, resumed = _losses(tmp_path / "straight"), _losses(tmp_path / "crashed")
    assert sorted(resumed) == list(range(1, 9))  # events after the checkpoint were replaced, not duplicated
    for step in range(5, 9):
        assert abs(resumed[step] - expected[step]) <= 1e-6, (step, resumed[step], expected[step])


def test_checkpoint_killed_mid_write_is_never_visible(tmp_path, tiny_run, monkeypatch):
    def dies(self, output_dir):
        raise RuntimeError("killed while writing rng state")

    monkeypatch.setattr(Trainer, "_save_rng_state", dies)
    config = validate_config(tiny_run(tmp_path / "run", max_steps=4, save_steps=2))
    with pytest.raises(RuntimeError, match="killed while writing"):
        pretrain(config)
    checkpoints = tmp_path / "run" / "checkpoints"
    assert not any(p.name.startswith("checkpoint-") for p in checkpoints.iterdir())
    with pytest.raises(KinheritError, match="no complete checkpoint"):
        pretrain(config, resume=True)


def test_final_model_folder_is_atomic(tmp_path, tiny_run, monkeypatch):
    from transformers import PreTrainedTokenizerFast

    monkeypatch.setattr(
        PreTrainedTokenizerFast, "save_pretrained", lambda *a, **k: (_ for _ in ()).throw(OSError("disk full"))
    )
    with pytest.raises(OSError, match="disk full"):
        pretrain(validate_config(tiny_run(tmp_path / "run", max_steps=2, eval_steps=2, save_steps=2)))
    assert not (tmp_path / "run" / "model").exists()


def test_nan_loss_stops_with_an_actionable_error(tmp_path, tiny_run):
    class Poison(TrainerCallback):
        def on_step_begin(self, args, state, control, model=None, **kwargs):
            if state.global_step == 2:
                with torch.no_grad():
                    model.get_input_embeddings().weight.fill_(float("nan"))

    with pytest.raises(KinheritError, match="loss became nan at step 3; lower train.learning_rate"):
        pretrain(validate_config(tiny_run(tmp_path / "run")), callbacks=[Poison()])


def test_rerun_into_a_used_folder_asks_for_resume(tmp_path, tiny_run):
    config = validate_config(tiny_run(tmp_path / "run", max_steps=2, eval_steps=2, save_steps=2))
    pretrain(config)
    with pytest.raises(KinheritError, match="pass --resume"):
        pretrain(config)


def test_model_checks_against_the_data(tmp_path, tiny_run):
    config = tiny_run(tmp_path / "run")
    config["model"]["max_position_embeddings"] = 16
    with pytest.raises(KinheritError, match="model.max_position_embeddings: 16 is fewer than data.seq_len 32"):
        pretrain(validate_config(config))
    small = tiny_run(tmp_path / "small", max_steps=1, eval_steps=1, save_steps=1)
    pretrain(validate_config(small))
    from transformers import AutoConfig

    cfg = AutoConfig.from_pretrained(str(tmp_path / "small" / "model"))
    cfg.vocab_size = 100  # a model whose embedding is smaller than the tokenizer
    AutoModelForCausalLM.from_config(cfg).save_pretrained(str(tmp_path / "tiny-vocab"))
    bad = tiny_run(tmp_path / "bad")
    bad["model"] = {"from": str(tmp_path / "tiny-vocab")}
    with pytest.raises(KinheritError, match=r"tokenizer has \d+ tokens but the model's embedding holds 100"):
        pretrain(validate_config(bad))
    assert json.loads((tmp_path / "small" / "model" / "config.json").read_text())["vocab_size"] >= 260


def test_logged_loss_is_the_step_mean_with_gradient_accumulation(tmp_path, tiny_run):
    """8 blocks as one batch or as 4 micro-batches of 2: the same blocks, so the same logged loss."""
    frozen = {"learning_rate": 0.0, "max_steps": 1, "eval_steps": 1, "save_steps": 1, "warmup_steps": 0}
    pretrain(validate_config(tiny_run(tmp_path / "ga1", **frozen)))
    pretrain(
        validate_config(
            tiny_run(tmp_path / "ga4", per_device_train_batch_size=2, gradient_accumulation_steps=4, **frozen)
        )
    )
    one, four = _losses(tmp_path / "ga1")[1], _losses(tmp_path / "ga4")[1]
    assert abs(one - four) < 1e-5, (one, four)
    tokens = {e["tokens"] for e in read_metrics(tmp_path / "ga4" / "metrics.jsonl") if e["step"] == 1}
    assert tokens == {8 * 32}


def test_fresh_start_replaces_the_metrics_of_a_run_that_died_before_any_checkpoint(tmp_path, tiny_run):
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.jsonl").write_text('{"step": 150, "tokens": 1, "flops": 1, "loss": 9.0}\n')
    (out / "checkpoints" / ".staging" / "checkpoint-999").mkdir(parents=True)  # a save killed midway
    pretrain(validate_config(tiny_run(out, max_steps=4, save_steps=2)))
    assert max(e["step"] for e in read_metrics(out / "metrics.jsonl")) == 4
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == ["checkpoint-2", "checkpoint-4"]


def test_mixture_of_experts_logs_its_router_loss_and_evaluates_the_lm_loss_alone(tmp_path, tiny_run):
    """A mixtral run trains on LM + coef·aux (the model's own loss) and logs aux_loss; val_loss is the LM loss."""
    config = tiny_run(tmp_path / "moe", family="mixtral", max_steps=3, eval_steps=3, save_steps=3)
    config["model"].update(num_experts=4, num_experts_per_tok=2)
    pretrain(validate_config(config))
    events = read_metrics(tmp_path / "moe" / "metrics.jsonl")
    aux = [e["aux_loss"] for e in events if "loss" in e]
    # load balancing E·Σ_e f_e·P_e is k = 2 for a uniform router; a fresh router is close to uniform
    assert len(aux) == 3 and all(1.9 < a < 2.5 for a in aux), aux

    model = AutoModelForCausalLM.from_pretrained(str(tmp_path / "moe" / "model")).eval()
    assert model.config.output_router_logits and model.config.num_local_experts == 4
    ids = torch.randint(0, 100, (2, 16), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        full = model(input_ids=ids, labels=ids)
        lm_only = model(input_ids=ids, labels=ids, output_router_logits=False)
    assert lm_only.aux_loss is None
    torch.testing.assert_close(full.loss, lm_only.loss + model.config.router_aux_loss_coef * full.aux_loss)
    assert adds_router_loss(model)
    model.config.output_router_logits = False
    assert not adds_router_loss(model)


def test_dense_family_refuses_expert_sizes(tiny_run, tmp_path):
    config = tiny_run(tmp_path / "x")
    config["model"]["num_experts"] = 4
    with pytest.raises(KinheritError, match="mixture-of-experts families; llama is dense"):
        validate_config(config)


def test_mixture_of_experts_resume_restores_the_experts(tmp_path, tiny_run):
    """transformers writes the fused experts to disk per expert; resuming a mixtral run must still restore them
    (a silent re-initialisation would change the losses after the checkpoint)."""
    straight = tiny_run(tmp_path / "straight", family="mixtral", max_steps=4, eval_steps=4, save_steps=2)
    pretrain(validate_config(straight))
    crashed = {**straight, "out": str(tmp_path / "crashed")}
    with pytest.raises(RuntimeError, match="simulated crash"):
        pretrain(validate_config(crashed), callbacks=[CrashAt(3)])
    pretrain(validate_config(crashed), resume=True)
    expected, resumed = _losses(tmp_path / "straight"), _losses(tmp_path / "crashed")
    for step in (3, 4):
        assert abs(resumed[step] - expected[step]) <= 1e-6, (step, resumed[step], expected[step])


def test_evaluations_score_the_capped_validation_blocks(tmp_path, tiny_run):
    """data.max_val_tokens = 3 blocks: every evaluation is the mean LM loss of the blocks ⌊j·n/3⌋, n the split's."""
    from kinherit.data.dataset import PackedBlocks
    from kinherit.data.packing import prepare_corpus

    config = tiny_run(tmp_path / "run", max_steps=2, eval_steps=2)
    config["data"]["max_val_tokens"] = 3 * config["data"]["seq_len"] + 5
    run = validate_config(config)
    result = pretrain(run)
    model = AutoModelForCausalLM.from_pretrained(str(result.out / "model")).eval()
    corpus = prepare_corpus(run.data)
    full = PackedBlocks(corpus.val_path, corpus.dtype, 32)
    assert full.num_blocks > 3
    picked = [full[j * full.num_blocks // 3]["input_ids"] for j in range(3)]
    with torch.no_grad():
        loss = model(input_ids=torch.stack(picked), labels=torch.stack(picked)).loss
    assert abs(result.final_val_loss - float(loss)) < 1e-5
