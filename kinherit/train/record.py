"""The run record (`run.json`, `kinherit.metrics.lineage`), written by the main process once the Trainer exists and
before the first step: the validation data's fingerprint, the lineage of the run's weights and teacher, and how
the run is laid out over processes. A sharding request the stack does not honour, or a teacher / initial model
trained on another split of this run's corpus, stops the run here."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from kinherit.config import RunConfig
from kinherit.data.packing import PackedCorpus
from kinherit.hf_folder import vocabulary_signature
from kinherit.metrics.lineage import Ancestors, check_leakage, data_record, lineage_links, write_run_record
from kinherit.train.distributed import check_distributed_request, run_layout
from kinherit.version import __version__


def teacher_placement(config: RunConfig, args: Any, sharded: bool = False) -> str | None:
    """Where the teacher's outputs come from, in words; `sharded`: under FSDP2 (`sources.teacher_placement`)."""
    if config.teacher is None:
        return None
    if config.teacher.cache is not None:
        return "offline top-K cache (no teacher model in memory)"
    if sharded:
        return f"online, sharded like the student (FSDP2) over the {args.world_size} processes on {args.device}"
    return f"online, a full copy on {args.device} in each of the {args.world_size} processes"


def start_run(
    trainer: Any, config: RunConfig, corpus: PackedCorpus, tokenizer: Any, command: str = "pretrain"
) -> dict[str, Any]:
    """Check the process layout against the request and the ancestors' splits against this run's (`check_leakage`),
    then (main process) write `run.json`; return the record."""
    args = trainer.args
    check_distributed_request(args, trainer.accelerator.distributed_type)
    record = {
        "kinherit": __version__,
        "command": command,
        "out": str(Path(config.out).resolve()),
        "cwd": str(Path.cwd()),
        "data": data_record(
            config.data, corpus.split, corpus.fingerprint, vocabulary_signature(tokenizer), corpus.val_path
        ),
        "lineage": lineage_links(config),
        "distributed": run_layout(
            args,
            trainer.accelerator.distributed_type,
            teacher_placement(config, args, getattr(trainer.accelerator, "is_fsdp2", False)),
            getattr(trainer.accelerator.state, "fsdp_plugin", None),
        ),
    }
    check_leakage(record["data"], Ancestors.of_links(record["lineage"]))
    if args.process_index == 0:
        write_run_record(config.out, record)
    return record
