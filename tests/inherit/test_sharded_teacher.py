"""An online teacher under FSDP2, sharded like the student: 2 CPU processes (gloo, accelerate's FSDP honoured on
CPU by `tests.fsdp_on_cpu`) give the losses of 1 process with the same global batch, resume exactly, and count the
teacher's FLOPs once."""

import json
import shutil
from contextlib import nullcontext
from types import SimpleNamespace

import pytest
import torch
import yaml
from accelerate.utils import DistributedType

from kinherit.config import validate_config
from kinherit.errors import KinheritError
from kinherit.inherit.objective import KDSettings, KnowledgeInheritance
from kinherit.inherit.sources import OnlineModel, SameTokenizerTeacher
from kinherit.kd.schedules import SCHEDULES, Alpha
from kinherit.metrics.log import read_metrics
from kinherit.train.pretrain import pretrain
from tests.conftest import torchrun_cli
from tests.inherit.conftest import student_run

FSDP2 = ["--train.fsdp=full_shard", "--train.fsdp_config={fsdp_version: 2}"]  # the README's flags
RUN = {"max_steps": 4, "eval_steps": 4, "save_steps": 2, "logging_steps": 1}
KEYS = ("loss", "lm_loss", "kd_loss", "grad_norm")


def _ki(out, cache_dir, teacher_dir, processes, **train):
    """KI over steps 0–2 from the full teacher distribution; a global batch of 8 sequences."""
    return student_run(
        out,
        cache_dir,
        {"path": str(teacher_dir), "schedule": "linear", "steps": 3},
        per_device_train_batch_size=8 // processes,
        **RUN,
        **train,
    )


def _train(out):
    return [e for e in read_metrics(out / "metrics.jsonl") if "loss" in e]


def _sharded(out, config, *flags, shards=None):
    path = out.parent / f"{out.name}.yaml"
    path.write_text(yaml.safe_dump(config))
    torchrun_cli(
        ["pretrain", "--config", str(path), *flags],
        module="tests.fsdp_on_cpu",
        env={"KINHERIT_TEST_SHARDS": str(shards)} if shards else None,
    )


@pytest.fixture(scope="module")
def sharded_run(tmp_path_factory, cache_dir, teacher_dir):
    root = tmp_path_factory.mktemp("fsdp2")
    (root / "shards").mkdir()
    _sharded(root / "two", _ki(root / "two", cache_dir, teacher_dir, 2), *FSDP2, shards=root / "shards")
    return root


def test_sharded_teacher_and_student_give_the_one_process_losses(sharded_run, tmp_path, cache_dir, teacher_dir):
    pretrain(validate_config(_ki(tmp_path / "one", cache_dir, teacher_dir, 1)))
    one, two = _train(tmp_path / "one"), _train(sharded_run / "two")
    assert [e["step"] for e in two] == [1, 2, 3, 4] and ["kd_loss" in e for e in two] == [True, True, True, False]
    for a, b in zip(one, two, strict=True):
        for key in KEYS:
            if key in a:
                assert b[key] == pytest.approx(a[key], rel=1e-5, abs=0), (a["step"], key)
        # FLOPs: the teacher ran on steps 0–2 over the global batch, once (not once per process)
        assert (a["tokens"], a["flops"], a["teacher_flops"]) == (b["tokens"], b["flops"], b["teacher_flops"])
    assert two[3]["teacher_flops"] == two[2]["teacher_flops"] == 3 * two[0]["teacher_flops"] > 0  # steps 0–2 only

    shards = [json.loads((sharded_run / "shards" / f"{rank}.json").read_text()) for rank in (0, 1)]
    for name, (local, full) in shards[0].items():  # each process holds half of every teacher matrix
        assert local[0] + shards[1][name][0][0] == full[0] and local[1:] == full[1:], name
    embed = next(v for k, v in shards[0].items() if "embed_tokens" in k)
    assert embed[0][0] * 2 == embed[1][0]


def test_the_run_folder_says_how_the_sharded_run_ran(sharded_run):
    """config.resolved.yaml keeps the fsdp_config the user gave; run.json the layout, transformers' resolved
    fsdp_config, accelerate's FSDP plugin and the teacher's placement."""
    resolved = yaml.safe_load((sharded_run / "two" / "config.resolved.yaml").read_text())
    assert resolved["train"]["fsdp"] == "full_shard" and resolved["train"]["fsdp_config"] == {"fsdp_version": 2}
    layout = json.loads((sharded_run / "two" / "run.json").read_text())["distributed"]
    assert (layout["world_size"], layout["distributed_type"], layout["requested"]) == (2, "FSDP", "FSDP")
    assert layout["fsdp_config"]["version"] == 2 and layout["fsdp_plugin"]["fsdp_version"] == 2
    assert layout["fsdp_plugin"]["reshard_after_forward"] is True
    assert layout["teacher"].startswith("online, sharded like the student (FSDP2) over the 2 processes on cpu")


@pytest.mark.slow
def test_sharded_teacher_run_resumes_exactly(sharded_run):
    resumed = sharded_run / "resumed"
    shutil.copytree(sharded_run / "two", resumed)
    shutil.rmtree(resumed / "checkpoints" / "checkpoint-4")
    shutil.rmtree(resumed / "model")
    config = yaml.safe_load((sharded_run / "two.yaml").read_text())
    _sharded(resumed, {**config, "out": str(resumed)}, *FSDP2, "--resume")
    for a, b in zip(
        _train(sharded_run / "two"), _train(resumed), strict=True
    ):  # steps 3 and 4 recomputed after the resume
        assert {k: a[k] for k in (*KEYS, "flops", "teacher_flops") if k in a} == {
            k: b[k] for k in (*KEYS, "flops", "teacher_flops") if k in b
        }


@pytest.mark.parametrize(
    ("kind", "fsdp2", "refused"),
    [
        (DistributedType.DEEPSPEED, False, "not supported under DEEPSPEED without FSDP2"),
        (DistributedType.FSDP, False, "not supported under FSDP without FSDP2"),
        (DistributedType.FSDP, True, None),
        (DistributedType.MULTI_CPU, False, None),
    ],
)
def test_online_teacher_is_refused_where_it_would_be_replicated(kind, fsdp2, refused):
    accelerator = SimpleNamespace(
        distributed_type=kind, is_fsdp2=fsdp2, device=torch.device("cpu"), autocast=nullcontext, torch_device_mesh=None
    )
    objective = KnowledgeInheritance(
        Alpha(SCHEDULES.lookup("linear"), 1.0, 3),
        SameTokenizerTeacher(OnlineModel(None), None, 8, None),
        KDSettings(2.0, 8, False),
    )
    if refused:
        with pytest.raises(KinheritError, match=refused):
            objective.start(accelerator)
        return
    objective.start(accelerator)
    assert (objective.source.model.placement.shard is not None) == fsdp2
