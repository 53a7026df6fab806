"""The catalog of supported families: `register_family` (called by each module of `families/`),
`supported()` and `detect(config)`, which finds the family and architecture of a config."""

from __future__ import annotations

from kinherit.arch.spec import FamilySpec, HeadSpec
from kinherit.errors import KinheritError
from kinherit.registry import Registry

FAMILIES: Registry[FamilySpec] = Registry("family")


def register_family(family: FamilySpec) -> FamilySpec:
    """Add a family under its name, with its reference; names and model types must be unique."""
    known_types = {mt for f in FAMILIES.values() for mt in f.model_types}
    assert not known_types & set(family.model_types), f"model type of {family.name!r} registered twice"
    return FAMILIES.add(family.name, family, family.reference)


def supported() -> str:
    """One line: `gpt2 (GPT2LMHeadModel, GPT2Model), llama (...), ...`."""
    return ", ".join(f"{f.name} ({', '.join(h.architecture for h in f.heads)})" for f in FAMILIES.values())


def detect(config, architecture: str | None = None) -> tuple[FamilySpec, HeadSpec]:
    """Family and architecture (the given one, else the config's); KinheritError listing the
    supported ones."""
    model_type = getattr(config, "model_type", None)
    architectures = [architecture] if architecture else list(getattr(config, "architectures", None) or [])
    for family in FAMILIES.values():
        if model_type in family.model_types:
            names = [h.architecture for h in family.heads]
            arch = next((a for a in architectures if a in names), None)
            if arch is None and not architectures:
                arch = family.lm_head.architecture  # a config built in code: the family's LM architecture
            if arch is not None:
                return family, family.head(arch)
    raise KinheritError(
        f"unsupported model family {model_type!r} (architectures {architectures or 'unset'}); supported: {supported()}"
    )
