"""`kinherit demo --quick` end to end: teacher, growth, four students, report.

The report's figures are checked against numbers computed here by hand or from the runs' own logs, so a
broken saving, FLOP count or sunk-cost lookup fails the test (a baseline's saving against itself is 0
whatever the code does, so it proves nothing).
"""

import json

import pytest

from kinherit.cli import main
from kinherit.demo.experiment import QUICK, STUDENTS

VOCAB, SEQ = 512, QUICK.data["seq_len"]  # the quick spec's BPE size and block length (64)


def _forward_per_token(hidden: int, layers: int, ffn: int) -> int:
    """2·N_matmul + 4·L·T·d: llama q, k, v, o (d×d, as many kv as query heads), gate/up/down (d×ffn), LM head (V×d)."""
    matmul = layers * (4 * hidden * hidden + 3 * hidden * ffn) + VOCAB * hidden
    return 2 * matmul + 4 * layers * SEQ * hidden


# teacher 32×1 (FFN 64): N_matmul = 4·32² + 3·32·64 + 512·32 = 26,624 → 61,440 forward FLOPs per token;
# 60 steps × 16 blocks × 64 tokens = 61,440 tokens, trained at 3 × forward → 11,324,620,800 FLOPs.
TEACHER_FORWARD = 61_440
TEACHER_PRETRAINING = 11_324_620_800
# student 64×2 (FFN 128): N_matmul = 2·(4·64² + 3·64·128) + 512·64 = 114,688 → 262,144 forward FLOPs per token;
# 30 steps × 16 × 64 = 30,720 tokens at 3 × forward → 24,159,191,040 FLOPs.
STUDENT_TRAINING = 24_159_191_040
TOKENS_PER_STEP = 16 * SEQ


def _events(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def _first_crossing(curve, target):
    """FLOPs where a (flops, loss) curve first reaches `target`, interpolated; written here, apart from kinherit's."""
    for (x0, y0), (x1, y1) in zip(curve, curve[1:]):
        if y0 <= target:
            return x0
        if y1 <= target:
            return x0 + (y0 - target) / (y0 - y1) * (x1 - x0)
    return None


def _check_savings(by_name, evals, baseline):
    """Savings recomputed from the logged curves: 1 − F_run(target) / F_baseline(target), target = the baseline's final
    loss."""
    target = evals[baseline][-1]["val_loss"]
    base = _first_crossing([(e["flops"], e["val_loss"]) for e in evals[baseline]], target)
    for name in STUDENTS:
        assert by_name[name]["final_val_loss"] == evals[name][-1]["val_loss"]
        needed = _first_crossing([(e["flops"], e["val_loss"]) for e in evals[name]], target)
        if needed is None:  # never reached within the budget
            assert by_name[name]["flops_to_baseline_loss"] is None and by_name[name]["saving_fraction"] is None
            continue
        assert by_name[name]["flops_to_baseline_loss"] == pytest.approx(needed, rel=1e-12)
        assert by_name[name]["saving_fraction"] == pytest.approx(1 - needed / base, rel=1e-9, abs=1e-12)


def test_the_hand_counts_match_the_spec():
    assert _forward_per_token(32, 1, 64) == TEACHER_FORWARD
    assert 3 * TEACHER_FORWARD * 60 * TOKENS_PER_STEP == TEACHER_PRETRAINING
    assert 3 * _forward_per_token(64, 2, 128) * 30 * TOKENS_PER_STEP == STUDENT_TRAINING


def test_quick_demo_produces_the_full_report(tmp_path, cache_dir, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--cache-dir", str(cache_dir)]) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "report" / "results.json").read_text())
    assert results["baseline"] == "scratch"
    assert [r["name"] for r in results["runs"]] == list(STUDENTS)
    by_name = {r["name"]: r for r in results["runs"]}
    evals = {name: [e for e in _events(out / name / "metrics.jsonl") if "val_loss" in e] for name in STUDENTS}

    # the teacher's own pre-training, by hand, is the sunk cost of every student it taught or was grown into
    teacher_evals = [e for e in _events(out / "teacher" / "metrics.jsonl") if "val_loss" in e]
    assert teacher_evals[-1]["flops"] == TEACHER_PRETRAINING
    assert {name: by_name[name]["sunk_flops"] for name in STUDENTS} == {
        "scratch": 0.0,
        "ki": TEACHER_PRETRAINING,
        "grown": TEACHER_PRETRAINING,
        "grown_ki": TEACHER_PRETRAINING,
    }
    # students' own training FLOPs by hand; KI adds the teacher's forward passes: its validation pass and whole steps
    assert by_name["scratch"]["total_flops"] == by_name["grown"]["total_flops"] == STUDENT_TRAINING
    assert by_name["grown"]["teacher_inference_flops"] == 0
    for name in ("ki", "grown_ki"):
        # the auto rule's one teacher pass over the validation blocks, counted from step 0, then whole training steps
        validation_pass = evals[name][0]["teacher_flops"]
        assert evals[name][0]["step"] == 0 and validation_pass > 0
        assert validation_pass / TEACHER_FORWARD == int(validation_pass / TEACHER_FORWARD)
        teacher_steps = (by_name[name]["teacher_inference_flops"] - validation_pass) / (
            TEACHER_FORWARD * TOKENS_PER_STEP
        )
        # ki: whole steps until the student passes its teacher; grown_ki starts as an exact copy of its teacher (equal
        # validation losses up to float round-off, within CAUGHT_UP on any CPU): released before its first step
        expected = range(1, 31) if name == "ki" else [0]
        assert teacher_steps == int(teacher_steps) and teacher_steps in expected, teacher_steps
        assert by_name[name]["total_flops"] == STUDENT_TRAINING + by_name[name]["teacher_inference_flops"]

    _check_savings(by_name, evals, "scratch")
    assert by_name["grown"]["saving_fraction"] == 1.0  # its first evaluation, at 0 FLOPs, beats scratch's final loss
    # against ki, whose final loss scratch crosses between two evaluations, the interpolation itself is exercised
    assert (
        main(
            [
                "report",
                *(str(out / name) for name in STUDENTS),
                "--baseline",
                str(out / "ki"),
                "--out",
                str(tmp_path / "against-ki"),
            ]
        )
        == 0
    )
    against_ki = {r["name"]: r for r in json.loads((tmp_path / "against-ki" / "results.json").read_text())["runs"]}
    _check_savings(against_ki, evals, "ki")
    assert 0 < against_ki["scratch"]["saving_fraction"] < 1

    growth = json.loads((out / "grown-init" / "growth.json").read_text())
    assert growth["report"]["comparisons"]  # the exact growth was verified
    for png in ("val_loss_vs_flops.png", "val_loss_vs_tokens.png", "val_loss_vs_time.png", "alpha.png"):
        assert (out / "report" / png).is_file()
    assert "| grown_ki |" in printed and "report and plots:" in printed
    # the grown students start where the teacher ended: their first evaluation is the grown init's loss
    assert abs(evals["grown"][0]["val_loss"] - teacher_evals[-1]["val_loss"]) < 1e-4
