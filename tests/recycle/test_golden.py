"""A short distillation fine-tuning run reproduces its stored loss curve (see tests/golden.py)."""

from pathlib import Path

from kinherit.config import validate_as
from kinherit.recycle.config import FinetuneConfig
from kinherit.recycle.finetune import finetune
from tests.golden import assert_matches_golden

from .conftest import LABELS, make_base, make_tuned

GOLDEN = Path(__file__).parent / "golden" / "finetune_distill.json"
SMALL = {"task": "stdlib-packages", "packages": LABELS, "train_per_class": 8, "val_per_class": 4, "max_length": 16}


def test_distillation_finetuning_loss_curve_is_unchanged(tmp_path, tokenizer_dir):
    base = make_base(tmp_path / "A", tokenizer_dir)
    teacher = make_tuned(base, tmp_path / "A-tuned")
    config = {
        "out": str(tmp_path / "ft"),
        "model": {"base": str(base)},
        "data": SMALL,
        "teacher": {"path": str(teacher)},
        "train": {"max_steps": 6, "eval_steps": 3, "logging_steps": 1, "per_device_train_batch_size": 8},
    }
    finetune(validate_as(FinetuneConfig, config))
    assert_matches_golden(tmp_path / "ft", GOLDEN)
