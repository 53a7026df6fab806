"""`GrowthOptions`: one validated, frozen model behind the CLI, `grow`, `grow_folder`, `make_plan` and the demo."""

from __future__ import annotations

import argparse
import sys

import pytest
import torch
from pydantic import ValidationError
from tiny_models import tiny_model

from kinherit.errors import KinheritError
from kinherit.grow import GrowthOptions, grow, make_plan
from kinherit.grow.command import add_parser


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"widht": "clone"}, "unknown growth option 'widht' (did you mean 'width'?)"),
        (
            {"width": "clon"},
            "growth option width: unknown width operator 'clon'; choose one of clone, net2net, zero, aki "
            "(did you mean 'clone'?)",
        ),
        (
            {"depth": "stak"},
            "unknown depth operator 'stak'; choose one of identity, stack, interpolate (did you mean 'stack'?)",
        ),
        (
            {"router": "orthogonl", "num_experts": 4},
            "unknown router init 'orthogonl'; choose one of zero, random, orthogonal (did you mean 'orthogonal'?)",
        ),
        ({"noise_db": float("inf")}, "--noise-db must be a number, got inf"),
        ({"router": "zero"}, "need --num-experts"),
        ({"num_experts": 4, "experts_per_token": 5}, "--experts-per-token must be between 1 and --num-experts 4"),
        ({"seed": "one"}, "growth option seed: Input should be a valid integer"),
    ],
)
def test_bad_options_are_one_line_errors_naming_the_option(options, message):
    with pytest.raises(KinheritError, match="^[^\n]*$") as caught:
        GrowthOptions.of(options)
    assert message in str(caught.value)


def test_options_are_frozen_and_updated_by_keywords():
    options = GrowthOptions(hidden_size=64, width="net2net")
    with pytest.raises(ValidationError):
        options.hidden_size = 128
    wider = GrowthOptions.of(options, hidden_size=128)
    assert (wider.hidden_size, wider.width, options.hidden_size) == (128, "net2net", 64)
    assert GrowthOptions.of(options) is options
    assert GrowthOptions(num_experts=8).top_k == 2 and GrowthOptions(num_experts=8, experts_per_token=1).top_k == 1


def test_grow_takes_the_options_model_or_its_fields():
    model = tiny_model("llama", gqa=True)
    by_model = grow(model, GrowthOptions(hidden_size=64, num_layers=3, width="net2net", seed=3), verify=False)
    by_keywords = grow(model, hidden_size=64, num_layers=3, width="net2net", seed=3, verify=False)
    assert by_model.plan == by_keywords.plan
    for (key, a), (_, b) in zip(by_model.model.state_dict().items(), by_keywords.model.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=key)
    assert make_plan(model.config, GrowthOptions(hidden_size=64)) == make_plan(model.config, hidden_size=64)


def test_every_option_is_a_cli_flag_with_the_models_default():
    """The CLI builds its `GrowthOptions` from argparse by field name: each field needs a flag of that name."""
    parser = argparse.ArgumentParser()
    add_parser(parser.add_subparsers())
    args = parser.parse_args(["grow", "src", "out"])
    for name, field in GrowthOptions.model_fields.items():
        assert hasattr(args, name), f"GrowthOptions.{name} has no `kinherit grow --{name.replace('_', '-')}`"
        assert getattr(args, name) == field.default, name


def test_the_options_module_imports_no_torch():
    """The config embeds `GrowthOptions` (growth stages): validating a config must not import torch."""
    import subprocess

    code = "import sys, kinherit.grow.options; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


def test_grow_takes_a_model_in_another_dtype_and_leaves_it_unchanged():
    """A training run may hold its model in bf16: growth reads it as fp32 and returns an fp32 model."""
    model = tiny_model("llama", gqa=True).to(torch.bfloat16)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    growth = grow(model, hidden_size=64)
    assert next(growth.model.parameters()).dtype == torch.float32
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert growth.report.max_deviation < 0.05  # the bf16 source's own rounding against the fp32 growth
