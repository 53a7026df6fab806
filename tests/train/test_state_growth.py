"""The growth of a training state: a pure transform (no trainer), AdamW's state of elements with no history, and the
grown checkpoint that carries every shape-free file."""

from __future__ import annotations

import json
import warnings

import pytest
import torch
import transformers
from transformers import LlamaConfig, LlamaForCausalLM

from kinherit.grow.options import GrowthOptions
from kinherit.train.state_growth import TrainingState, grow_state, held_lm_loss, named_moments, write_grown_checkpoint
from kinherit.train.trainer import GROWN_OPTIMIZER, STAGE_STATE

BETAS, LR = (0.9, 0.999), 1e-2


def _small(seed: int = 0) -> LlamaForCausalLM:
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=50,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=32,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(cfg)
    for p in model.parameters():
        p.data.normal_(0, 0.2)
    return model


def _trained_state(model: LlamaForCausalLM, steps: int = 30) -> TrainingState:
    """The model after `steps` AdamW steps on random tokens, with its optimizer state by name."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=LR, betas=BETAS, weight_decay=0.0)
    names = {id(p): n for n, p in model.named_parameters()}
    for step in range(steps):
        ids = torch.randint(0, 50, (4, 12), generator=torch.Generator().manual_seed(step))
        optimizer.zero_grad()
        model(input_ids=ids, labels=ids).loss.backward()
        optimizer.step()
    moments = {names[id(p)]: {k: v.clone() for k, v in s.items()} for p, s in optimizer.state.items()}
    return TrainingState(model, moments, steps, 123.0, {})


def _held() -> dict[str, torch.Tensor]:
    ids = torch.randint(0, 50, (2, 12), generator=torch.Generator().manual_seed(99))
    return {"input_ids": ids, "labels": ids, "attention_mask": torch.ones_like(ids)}


def _grow(state: TrainingState, **options) -> tuple[TrainingState, dict]:  # noqa: ANN003
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return grow_state(state, GrowthOptions(**options), _held())


def test_the_transform_builds_no_trainer_and_keeps_step_flops_and_loss(monkeypatch):
    monkeypatch.setattr(transformers.Trainer, "__init__", lambda *a, **k: pytest.fail("a trainer was built"))
    state = _trained_state(_small())
    grown, record = _grow(state, num_layers=2, hidden_size=32, num_heads=4, intermediate_size=64)
    assert (grown.step, grown.flops) == (30, 123.0) and record["at_step"] == 30 and record["flops_at_step"] == 123.0
    assert abs(record["loss_after"] - record["loss_before"]) <= 1e-4
    assert held_lm_loss(grown.model, _held()) == pytest.approx(record["loss_after"], abs=0)
    assert grown.model.config.num_hidden_layers == 2 and grown.model.config.hidden_size == 32


def test_a_dense_to_moe_growth_keeps_the_lm_loss_without_the_router_loss():
    """The upcycled model's `.loss` includes the router auxiliary loss (output_router_logits is on in its config):
    the growth compares the LM loss alone, which is exact."""
    state = _trained_state(_small())
    grown, record = _grow(state, num_experts=4)
    assert grown.model.config.output_router_logits
    with torch.no_grad():
        with_aux = float(grown.model(**{k: v for k, v in _held().items()}).loss)
    assert abs(record["loss_after"] - record["loss_before"]) <= 1e-5 < abs(with_aux - record["loss_before"])


def _adam_update(param: torch.Tensor, moments: dict[str, torch.Tensor] | None, grad: torch.Tensor) -> torch.Tensor:
    """One AdamW step of `param` from `moments` (None: no state) with gradient `grad`; returns |Δ| / lr."""
    p = torch.nn.Parameter(param.clone())
    optimizer = torch.optim.AdamW([p], lr=LR, betas=BETAS, weight_decay=0.0)
    if moments is not None:
        optimizer.load_state_dict(
            {
                "state": {0: {k: v.clone() for k, v in moments.items()}},
                "param_groups": optimizer.state_dict()["param_groups"],
            }
        )
    p.grad = grad.clone()
    optimizer.step()
    return (p.detach() - param).abs() / LR


def test_tensors_with_no_history_start_as_fresh_adam_parameters():
    """Upcycling: the routers' growth image is zero. They get no state, so their first update is a fresh Adam
    step (|Δ| = lr for every element with a gradient); a zero state at the run's step would give ≈ 0.76× lr at
    step 31 and several times lr later (bias correction by the tensor's step)."""
    state = _trained_state(_small())
    grown, _ = _grow(state, num_experts=4)
    routers = [n for n, _ in grown.model.named_parameters() if n.endswith("gate.weight")]
    assert routers and not set(routers) & set(grown.moments)
    router = dict(grown.model.named_parameters())[routers[0]].detach()
    grad = torch.randn_like(router)
    fresh = _adam_update(router, None, grad)
    torch.testing.assert_close(fresh, torch.ones_like(fresh), rtol=1e-4, atol=0)
    zero_at_step = _adam_update(
        router,
        {"step": torch.tensor(30.0), "exp_avg": torch.zeros_like(router), "exp_avg_sq": torch.zeros_like(router)},
        grad,
    )
    assert not torch.allclose(zero_at_step, fresh, rtol=0.05)


def test_new_units_inside_a_tensor_with_history_never_step_further_than_a_fresh_parameter():
    """`width: zero` draws new FFN units into tensors whose other units have history: their m is 0 and their v the
    tensor's mean v, so over the next 50 steps of a steady gradient their update ramps up to, and never exceeds, a
    fresh step's size (zero moments at the tensor's step would overshoot it several times)."""
    state = _trained_state(_small(), steps=200)
    grown, _ = _grow(state, intermediate_size=64, width="zero", noise_db=None)
    name = "model.layers.0.mlp.down_proj.weight"  # (H, F): columns 32..63 read the drawn units
    moments = grown.moments[name]
    param = dict(grown.model.named_parameters())[name].detach()
    new = (slice(None), slice(32, 64))
    assert moments["exp_avg"][new].abs().max() == 0 and torch.all(moments["exp_avg_sq"][new] > 0)
    typical = moments["exp_avg_sq"][:, :32].mean() / (1 - BETAS[1] ** 200)  # v̂ of the units with history
    grad = torch.full_like(param, float(typical.sqrt()))
    zeroed = {**moments, "exp_avg_sq": moments["exp_avg_sq"].clone().index_fill_(1, torch.arange(32, 64), 0.0)}
    ours, zeros = [], []
    for start, out in ((moments, ours), (zeroed, zeros)):
        p = torch.nn.Parameter(param.clone())
        optimizer = torch.optim.AdamW([p], lr=LR, betas=BETAS, weight_decay=0.0)
        optimizer.load_state_dict(
            {
                "state": {0: {k: v.clone() for k, v in start.items()}},
                "param_groups": optimizer.state_dict()["param_groups"],
            }
        )
        for _ in range(50):
            before = p.detach().clone()
            p.grad = grad.clone()
            optimizer.step()
            out.append(float((p.detach() - before)[new].abs().max()) / LR)
    assert max(ours) <= 1.0 + 1e-4 and ours[-1] > 0.9
    assert max(zeros) > 2.5


def test_the_grown_checkpoint_carries_every_shape_free_file(tmp_path):
    """Trainer state, RNG, the objective and the grad scaler pass through unchanged; the small model's weights and
    its optimizer/scheduler files are replaced by the grown model and its state by name."""
    state = _trained_state(_small())
    checkpoint = tmp_path / "checkpoints" / "checkpoint-30"
    state.model.save_pretrained(checkpoint)
    carried = {
        "trainer_state.json": b'{"global_step": 30}',
        "rng_state.pth": b"rng",
        "scaler.pt": b"scale",
        "objective.json": b"{}",
        "training_args.bin": b"args",
    }
    for name, data in {**carried, "optimizer.pt": b"old", "scheduler.pt": b"old"}.items():
        (checkpoint / name).write_bytes(data)
    grown, _ = _grow(state, num_layers=2)
    write_grown_checkpoint(grown, checkpoint, stage=1)
    for name, data in carried.items():
        assert (checkpoint / name).read_bytes() == data
    assert not (checkpoint / "optimizer.pt").exists() and not (checkpoint / "scheduler.pt").exists()
    assert (
        json.loads((checkpoint / STAGE_STATE).read_text()) == {"stage": 1} and (checkpoint / GROWN_OPTIMIZER).is_file()
    )
    assert not (tmp_path / "checkpoints" / ".staging" / "checkpoint-30").exists()
    by_name = named_moments(checkpoint)
    assert by_name.keys() == grown.moments.keys()
    for key in by_name:
        torch.testing.assert_close(by_name[key]["exp_avg_sq"], grown.moments[key]["exp_avg_sq"], rtol=0, atol=0)
