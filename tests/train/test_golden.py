"""A 10-step llama pre-training run reproduces its stored loss curve (see tests/golden.py)."""

from pathlib import Path

from kinherit.config import validate_config
from kinherit.train.pretrain import pretrain
from tests.golden import assert_matches_golden

GOLDEN = Path(__file__).parent / "golden" / "pretrain_llama.json"


def test_pretraining_loss_curve_is_unchanged(tmp_path, tiny_run):
    config = tiny_run(tmp_path / "run", max_steps=10, eval_steps=5, save_steps=10)
    config["model"]["dropout"] = 0.1  # the RNG stream is part of what must not change
    pretrain(validate_config(config))
    assert_matches_golden(tmp_path / "run", GOLDEN)
