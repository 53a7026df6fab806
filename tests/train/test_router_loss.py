"""A mixture-of-experts router's load-balancing loss is added once per optimizer step at its configured
coefficient, outside the objective's mix, whatever the accumulation steps (issue: it was counted GA times,
and knowledge inheritance multiplied it by 1 − α, switching balancing off at α = 1)."""

from __future__ import annotations

import pytest
import torch
from transformers import MixtralConfig, MixtralForCausalLM, TrainingArguments

from kinherit.kd.losses import mix
from kinherit.metrics.flops import flops_per_token
from kinherit.train.objective import ModelLoss
from kinherit.train.trainer import KinheritTrainer

COEF, GA = 0.5, 4


class PureKD:
    """An objective whose loss at α = 1 is a KD-like term of the logits alone (no LM, no aux)."""

    normalised_by_step = False
    extra_columns: tuple[str, ...] = ()

    def start(self, accelerator):  # noqa: ANN001, ANN201
        return None

    def loss(self, step, lm, outputs, batch, extras):  # noqa: ANN001, ANN201
        kd = outputs.logits.float().square().mean()
        return mix(lm, kd, 1.0), {"lm_loss": lm, "kd_loss": kd}

    def extra_flops(self, step, tokens_per_step):  # noqa: ANN001, ANN201
        return {}

    def eval_terms(self, outputs, batch, extras):  # noqa: ANN001, ANN201
        return {}

    def on_evaluate(self, step, metrics):  # noqa: ANN001, ANN201
        return {}

    def state_dict(self):  # noqa: ANN201
        return {}

    def load_state_dict(self, state):  # noqa: ANN001, ANN201
        return None


def _setup(tmp_path, objective):  # noqa: ANN001, ANN202
    torch.manual_seed(0)
    config = MixtralConfig(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        num_local_experts=4,
        num_experts_per_tok=2,
        output_router_logits=True,
        router_aux_loss_coef=COEF,
        max_position_embeddings=16,
    )
    model = MixtralForCausalLM(config).train()
    args = TrainingArguments(output_dir=str(tmp_path), gradient_accumulation_steps=GA, use_cpu=True, report_to="none")
    trainer = KinheritTrainer(model=model, args=args, objective=objective, student_flops=flops_per_token(model, 8))
    trainer.current_gradient_accumulation_steps = GA
    ids = torch.randint(0, 64, (2, 8), generator=torch.Generator().manual_seed(1))
    return trainer, model, {"input_ids": ids, "labels": ids.clone()}


def _aux(model, batch):  # noqa: ANN001, ANN202
    return model(**batch).aux_loss


def test_a_step_normalised_lm_loss_gets_the_router_loss_once_per_step(tmp_path):
    trainer, model, batch = _setup(tmp_path, ModelLoss())
    items = torch.tensor(7 * 2 * GA)  # the step's target tokens: GA micro-batches of 2×7
    loss = trainer.compute_loss(model, dict(batch), num_items_in_batch=items)
    lm_share = model(**batch, output_router_logits=False, num_items_in_batch=items).loss
    expected = lm_share + COEF * _aux(model, batch) / GA  # summed over GA micro-batches: mean LM + c·mean aux
    torch.testing.assert_close(loss, expected)
    logged = trainer._mean_terms()
    assert logged["loss"] == pytest.approx((lm_share * GA).item(), rel=1e-5)  # the LM loss, aux outside it
    assert logged["aux_loss"] == pytest.approx(_aux(model, batch).item(), rel=1e-5)


def test_knowledge_inheritance_at_alpha_one_keeps_the_router_loss(tmp_path):
    trainer, model, batch = _setup(tmp_path, PureKD())
    loss = trainer.compute_loss(model, dict(batch))
    outputs = model(**batch)
    expected = outputs.logits.float().square().mean() + COEF * outputs.aux_loss  # Trainer then divides by GA
    torch.testing.assert_close(loss, expected)
    logged = trainer._mean_terms()
    lm_alone = model(**batch, output_router_logits=False).loss
    assert logged["lm_loss"] == pytest.approx(lm_alone.item(), rel=1e-5)  # the auto rule compares LM with LM
