"""Lineage: sunk compute walked recursively from the absolute paths each run records (teacher, cache, model.from,
growth source), a missing link is an error, and a saving that pays for the sunk compute is reported."""

import json

import pytest

from kinherit.errors import KinheritError
from kinherit.metrics.lineage import Ancestors, check_leakage, model_link
from kinherit.metrics.report import build_report
from tests.metrics.test_report import DATA, _fake_run


def _link(role, path, **extra):
    return {"role": role, "path": str(path.resolve()), **extra}


@pytest.fixture()
def chain(tmp_path):
    """A (scratch, 100 FLOPs) teaches B (120 FLOPs); C (90 FLOPs) starts from a model grown from B; D is scratch."""
    _fake_run(tmp_path / "A", [(0, 0.0, 8.0), (10, 100.0, 5.0)])
    (tmp_path / "A" / "model").mkdir()
    _fake_run(tmp_path / "B", [(0, 0.0, 8.0), (10, 120.0, 4.5)], lineage=[_link("teacher", tmp_path / "A" / "model")])
    (tmp_path / "B" / "model").mkdir()
    grown = tmp_path / "grown"
    grown.mkdir()
    (grown / "growth.json").write_text(json.dumps({"source": str((tmp_path / "B" / "model").resolve())}))
    _fake_run(
        tmp_path / "C",
        [(0, 0.0, 6.0), (10, 90.0, 3.0)],
        lineage=[_link("model.from", grown, source=str((tmp_path / "B" / "model").resolve()))],
    )
    _fake_run(tmp_path / "D", [(0, 0.0, 8.0), (10, 200.0, 4.0)])
    return tmp_path


def test_a_chain_counts_every_ancestor_once(chain):
    assert Ancestors.of_run(chain / "C").flops() == 100.0 + 120.0  # A's pre-training reaches C through B


def test_report_walks_the_chain_from_another_directory_and_pays_for_it(chain, tmp_path_factory, monkeypatch):
    monkeypatch.chdir(tmp_path_factory.mktemp("elsewhere"))  # paths are absolute: the report's cwd does not matter
    report = build_report([chain / "D", chain / "C"], chain / "r")
    c = {r.name: r for r in report.results}["C"]
    reach = 10 * (6.0 - 4.0) / (6.0 - 3.0) * 9.0  # C crosses D's 4.0 at 2/3 of its first 10 steps (90 FLOPs)
    assert c.flops_to_baseline_loss == pytest.approx(reach)
    assert c.saving_fraction == pytest.approx(1 - reach / 200.0)
    assert c.sunk_flops == 220.0 and c.saving_including_sunk == pytest.approx(1 - (reach + 220.0) / 200.0)
    assert f"| 220 | {1 - (reach + 220.0) / 200.0:.1%} |" in (chain / "r" / "report.md").read_text()


def test_a_missing_link_fails_loudly(chain):
    (chain / "A" / "metrics.jsonl").unlink()
    with pytest.raises(
        KinheritError, match=r"lineage of .*B: teacher .*A/model comes from run .*A, whose metrics.jsonl is missing"
    ):
        build_report([chain / "D", chain / "C"], chain / "r")


def test_a_cached_teacher_counts_the_teachers_pre_training(chain):
    cache = chain / "cache"
    cache.mkdir()
    (cache / "meta.json").write_text(json.dumps({"teacher": {"path": str((chain / "A" / "model").resolve())}}))
    link = model_link("teacher.cache", cache)
    assert link["teacher"] == str((chain / "A" / "model").resolve()) and link["sunk_flops"] == 100.0


def test_links_are_recorded_as_absolute_paths(chain, monkeypatch):
    monkeypatch.chdir(chain)
    link = model_link("teacher", "A/model")
    assert link == {"role": "teacher", "path": str((chain / "A" / "model").resolve()), "sunk_flops": 100.0}


def test_a_model_no_kinherit_run_produced_is_unknown_not_zero(tmp_path):
    (tmp_path / "hub" / "gpt2").mkdir(parents=True)
    found = Ancestors.of_links([_link("teacher", tmp_path / "hub" / "gpt2")])
    assert found.external == [str((tmp_path / "hub" / "gpt2").resolve())] and found.known_flops() is None


def test_leakage_from_a_teacher_trained_on_another_split_is_refused(chain):
    ancestors = Ancestors.of_run(chain / "B")
    check_leakage(DATA, ancestors)  # same split: fine
    check_leakage({**DATA, "roots": ["/elsewhere"], "split_seed": 3}, ancestors)  # another corpus: nothing shared
    with pytest.raises(
        KinheritError,
        match=r"with another train/validation split \(split_seed 0 vs 1\): its training text may "
        r"include this run's validation text",
    ):
        check_leakage({**DATA, "split_seed": 1}, ancestors)
    with pytest.raises(
        KinheritError, match=r"source /data/corpus vs /data/corpus/sub"
    ):  # the same files under other keys
        check_leakage({**DATA, "roots": ["/data/corpus/sub"]}, ancestors)
