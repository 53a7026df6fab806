"""A model whose weights stay on disk: built on the meta device, every module with parameters of its own reads
them from the folder's safetensors just before its forward and drops them after it.

Running such a model computes exactly what the loaded model computes, while memory holds the activations and
the weights of one module (one Linear, one embedding) at a time; `stream.grow_streaming` verifies a grown model
this way against its source, layer by layer on the same held batch, without both models in memory. Tied
parameters (one Parameter under several names) are read under whichever of their names the folder stores.
"""

from __future__ import annotations

from pathlib import Path

import torch
import transformers
from accelerate import init_empty_weights
from transformers import PretrainedConfig, PreTrainedModel

from kinherit.errors import KinheritError
from kinherit.grow.shards import FolderTensors


def offloaded(folder: str | Path, architecture: str, config: PretrainedConfig, role: str = "") -> PreTrainedModel:
    """`transformers.<architecture>(config)` in eval mode whose weights are read (as fp32) from `folder` module by
    module during each forward; inference only. A parameter the folder lacks under every name is an error."""
    with init_empty_weights(include_buffers=False):
        model = getattr(transformers, architecture)(config)
    model.tie_weights()
    tensors = FolderTensors(folder, role, upcast=True, aliases=stored_names(model, folder, role))
    for prefix, module in model.named_modules():
        own = dict(module.named_parameters(recurse=False))
        if not own:
            continue
        keys = {local: f"{prefix}.{local}" if prefix else local for local in own}
        for local, key in keys.items():
            if tensors.shape(key) != tuple(own[local].shape):
                raise KinheritError(
                    f"{key} in {folder} has shape {tensors.shape(key)}, the config implies {tuple(own[local].shape)}"
                )
        module.register_forward_pre_hook(_load(tensors, keys))
        module.register_forward_hook(_drop(own))
    return model.eval()


def stored_names(model: torch.nn.Module, folder: str | Path, role: str = "") -> dict[str, str]:
    """Every parameter name of `model` → the name its tensor is stored under in `folder` (tied parameters are
    stored once, under one of their names). A parameter stored under none of its names is an error."""
    stored = set(FolderTensors(folder, role))
    names: dict[int, list[str]] = {}
    for name, p in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(p), []).append(name)
    out = {}
    for group in names.values():
        here = [n for n in group if n in stored]
        if not here:
            raise KinheritError(f"{role + ' ' if role else ''}{folder} has no tensor {group[0]}")
        out.update({n: here[0] for n in group})
    return out


def _load(tensors: FolderTensors, keys: dict[str, str]):
    def hook(module: torch.nn.Module, args) -> None:
        for local, key in keys.items():
            module._parameters[local] = torch.nn.Parameter(tensors[key], requires_grad=False)

    return hook


def _drop(meta: dict[str, torch.nn.Parameter]):
    def hook(module: torch.nn.Module, args, output) -> None:
        module._parameters.update(meta)

    return hook
