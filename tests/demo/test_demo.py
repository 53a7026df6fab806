"""`kinherit demo --quick` end to end: teacher, growth, four students, report."""

import json

from kinherit.cli import main
from kinherit.demo.experiment import STUDENTS


def test_quick_demo_produces_the_full_report(tmp_path, cache_dir, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out), "--cache-dir", str(cache_dir)]) == 0
    printed = capsys.readouterr().out
    results = json.loads((out / "report" / "results.json").read_text())
    assert results["baseline"] == "scratch"
    assert [r["name"] for r in results["runs"]] == list(STUDENTS)
    by_name = {r["name"]: r for r in results["runs"]}
    assert by_name["scratch"]["saving_fraction"] == 0.0
    assert by_name["ki"]["teacher_inference_flops"] > 0 and by_name["grown"]["teacher_inference_flops"] == 0
    assert by_name["grown"]["sunk_flops"] > 0  # the teacher's pre-training, reported apart from the saving
    growth = json.loads((out / "grown-init" / "growth.json").read_text())
    assert growth["report"]["comparisons"]  # the exact growth was verified
    for png in ("val_loss_vs_flops.png", "val_loss_vs_tokens.png", "val_loss_vs_time.png", "alpha.png"):
        assert (out / "report" / png).is_file()
    assert "| grown_ki |" in printed and "report and plots:" in printed
    # the grown students start where the teacher ended: their first evaluation is the grown init's loss
    teacher_final = [json.loads(x) for x in (out / "teacher" / "metrics.jsonl").read_text().splitlines()][-1]["val_loss"]
    grown_first = [json.loads(x) for x in (out / "grown" / "metrics.jsonl").read_text().splitlines()][0]["val_loss"]
    assert abs(grown_first - teacher_final) < 1e-4
