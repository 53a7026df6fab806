"""`python -m tests.fsdp_on_cpu ARGS`: `kinherit ARGS` with accelerate's FSDP honoured on CPU (gloo) processes.

accelerate 1.16 enables FSDP only for GPU-like process groups (`AcceleratorState` skips it for `MULTI_CPU`, and the
request is dropped: the run is DDP). This shim sets the state accelerate would set on GPUs (distributed type FSDP,
the FSDP plugin), so the FSDP2 code path (accelerate's `fully_shard` of the student, kinherit's sharded teacher)
runs under torchrun on a CPU-only machine. Tests only: kinherit itself never patches accelerate.

With `KINHERIT_TEST_SHARDS=DIR`, each process writes `DIR/<rank>.json`: every teacher parameter's local and global
shape once `shard_like_student` sharded it.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import accelerate.state
import torch
from accelerate.utils import DistributedType

from kinherit.inherit import sources

_init = accelerate.state.AcceleratorState.__init__


def _honour_fsdp_on_cpu(self, *args, fsdp_plugin=None, **kwargs):  # noqa: ANN001, ANN002, ANN003, ANN202
    _init(self, *args, fsdp_plugin=fsdp_plugin, **kwargs)
    if fsdp_plugin is not None and self.distributed_type == DistributedType.MULTI_CPU:
        self.distributed_type = DistributedType.FSDP
        self.fsdp_plugin = fsdp_plugin
        accelerate.state.PartialState._shared_state["distributed_type"] = DistributedType.FSDP


accelerate.state.AcceleratorState.__init__ = _honour_fsdp_on_cpu
_shard = sources.shard_like_student


def _recorded_shard(model: torch.nn.Module, mesh: object = None) -> torch.nn.Module:
    model = _shard(model, mesh)
    shapes = {name: [list(p.to_local().shape), list(p.shape)] for name, p in model.named_parameters()}
    Path(os.environ["KINHERIT_TEST_SHARDS"], f"{torch.distributed.get_rank()}.json").write_text(json.dumps(shapes))
    return model


if "KINHERIT_TEST_SHARDS" in os.environ:
    sources.shard_like_student = _recorded_shard

if __name__ == "__main__":
    from kinherit.cli import main

    sys.exit(main(sys.argv[1:]))
