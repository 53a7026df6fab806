import json

import pytest

from kinherit.cli import main
from kinherit.errors import KinheritError
from kinherit.metrics.report import build_report

DATA = {
    "sources": ["corpus"],
    "roots": ["/data/corpus"],
    "split": "documents",
    "split_seed": 0,
    "val_fraction": 0.05,
    "max_documents": None,
    "text_field": "text",
    "tokenizer": "t0",
    "corpus": "c0",
    "val_sha256": "v0",
}


def _fake_run(path, points, teacher_flops=0.0, alpha=False, data=None, lineage=(), selection_flops=0.0):
    path.mkdir(parents=True)
    (path / "run.json").write_text(json.dumps({"data": {**DATA, **(data or {})}, "lineage": list(lineage)}))
    lines = []
    for step, flops, loss in points:
        train = {"step": step, "tokens": step * 10, "flops": flops, "loss": loss + 0.1, "tokens_per_s": 1000.0}
        if teacher_flops:
            train["teacher_flops"] = teacher_flops
        if alpha:
            train["alpha"] = max(0.0, 1 - step / 20)
        evaluation = {"step": step, "tokens": step * 10, "flops": flops, "val_loss": loss, "time_s": step * 1.0}
        if teacher_flops:
            evaluation["teacher_flops"] = teacher_flops
        if selection_flops:
            evaluation["selection_flops"] = train["selection_flops"] = selection_flops
        lines += [train, evaluation]
    (path / "metrics.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))


def test_report_on_two_runs_has_exact_savings(tmp_path):
    _fake_run(tmp_path / "scratch", [(0, 0.0, 8.0), (10, 100.0, 6.0), (20, 200.0, 4.0)])
    _fake_run(
        tmp_path / "ki",
        [(0, 30.0, 8.0), (10, 150.0, 4.5), (20, 270.0, 3.5)],
        teacher_flops=40.0,
        alpha=True,
        selection_flops=30.0,
    )
    report = build_report([tmp_path / "scratch", tmp_path / "ki"], tmp_path / "report")
    by_name = {r.name: r for r in report.results}
    assert by_name["scratch"].flops_to_baseline_loss == 200.0 and by_name["scratch"].saving_fraction == 0.0
    ki = by_name["ki"]
    # 4.5 → 3.5 crosses 4.0 halfway; the 30 FLOPs of data-selection scoring count from step 0 on
    assert ki.flops_to_baseline_loss == pytest.approx(150.0 + 0.5 / 1.0 * 120.0)
    assert ki.saving_fraction == pytest.approx(1 - 210.0 / 200.0) and ki.speedup == pytest.approx(200.0 / 210.0)
    assert ki.teacher_inference_flops == 40.0 and ki.selection_flops == 30.0 and ki.tokens_per_s == 1000.0
    results = json.loads((tmp_path / "report" / "results.json").read_text())
    required = {
        "name",
        "final_val_loss",
        "flops_to_baseline_loss",
        "saving_fraction",
        "speedup",
        "teacher_inference_flops",
        "tokens_per_s",
    }
    assert all(required <= set(r) for r in results["runs"])
    for png in ("val_loss_vs_flops.png", "val_loss_vs_tokens.png", "val_loss_vs_time.png", "alpha.png"):
        assert (tmp_path / "report" / png).stat().st_size > 5000
    assert "| ki | 3.5000 |" in (tmp_path / "report" / "report.md").read_text()
    assert (
        "| 40 | 30 | 0 | -5.0% | 1,000 |" in (tmp_path / "report" / "report.md").read_text()
    )  # teacher, selection, sunk FLOPs, saving incl. sunk


def test_unreached_baseline_is_reported_as_such(tmp_path, capsys):
    _fake_run(tmp_path / "scratch", [(0, 0.0, 8.0), (10, 100.0, 4.0)])
    _fake_run(tmp_path / "worse", [(0, 0.0, 8.0), (10, 100.0, 5.0)])
    assert (
        main(["report", str(tmp_path / "worse"), "--baseline", str(tmp_path / "scratch"), "--out", str(tmp_path / "r")])
        == 0
    )
    out = capsys.readouterr().out
    assert "| worse | 5.0000 | 148.41 | not reached | — |" in out


def test_folder_without_metrics_is_an_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(KinheritError, match="no evaluation events"):
        build_report([tmp_path / "empty"], tmp_path / "r")


def test_a_baseline_that_never_improves_is_an_error_not_a_traceback(tmp_path):
    _fake_run(tmp_path / "diverged", [(0, 0.0, 5.0), (10, 100.0, 6.0)])
    _fake_run(tmp_path / "ok", [(0, 0.0, 5.0), (10, 100.0, 4.0)])
    with pytest.raises(KinheritError, match="baseline diverged has no usable target"):
        build_report([tmp_path / "diverged", tmp_path / "ok"], tmp_path / "r")


def test_a_last_line_cut_by_a_kill_is_ignored(tmp_path):
    from kinherit.metrics.log import read_metrics

    _fake_run(tmp_path / "run", [(0, 0.0, 8.0), (10, 100.0, 6.0)])
    with (tmp_path / "run" / "metrics.jsonl").open("a") as handle:
        handle.write('{"step": 20, "tok')
    assert len(read_metrics(tmp_path / "run" / "metrics.jsonl")) == 4


def test_runs_validated_on_other_data_are_refused_naming_the_difference(tmp_path):
    _fake_run(tmp_path / "scratch", [(0, 0.0, 8.0), (10, 100.0, 4.0)])
    _fake_run(tmp_path / "other", [(0, 0.0, 8.0), (10, 100.0, 3.0)], data={"split_seed": 1, "val_sha256": "v1"})
    with pytest.raises(
        KinheritError,
        match=r"^run other was validated on other data than the baseline scratch "
        r"\(split_seed 0 vs 1, val_sha256 'v0' vs 'v1'\): their losses are not comparable",
    ):
        build_report([tmp_path / "scratch", tmp_path / "other"], tmp_path / "r")


def test_a_run_without_a_record_is_refused(tmp_path):
    _fake_run(tmp_path / "scratch", [(0, 0.0, 8.0), (10, 100.0, 4.0)])
    _fake_run(tmp_path / "old", [(0, 0.0, 8.0), (10, 100.0, 3.0)])
    (tmp_path / "old" / "run.json").unlink()
    with pytest.raises(KinheritError, match=r"^run old has no validation-data record \(run.json\)"):
        build_report([tmp_path / "scratch", tmp_path / "old"], tmp_path / "r")
