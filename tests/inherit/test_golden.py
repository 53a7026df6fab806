"""A 10-step knowledge-inheritance run reproduces its stored loss curve (see tests/golden.py)."""

from pathlib import Path

from kinherit.config import validate_config
from kinherit.train.pretrain import pretrain
from tests.golden import assert_matches_golden
from tests.inherit.conftest import student_run

GOLDEN = Path(__file__).parent / "golden" / "ki_linear.json"


def test_ki_loss_curve_is_unchanged(tmp_path, cache_dir, teacher_dir):
    teacher = {
        "path": str(teacher_dir),
        "schedule": "linear",
        "steps": 6,
        "top_k": 16,
        "temperature": 2.0,
    }  # as recorded
    config = student_run(tmp_path / "ki", cache_dir, teacher, max_steps=10, eval_steps=5, save_steps=10)
    pretrain(validate_config(config))
    assert_matches_golden(tmp_path / "ki", GOLDEN)
