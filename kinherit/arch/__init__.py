"""Per-family descriptions of which tensors live in which dimension space (data, not code)."""

import kinherit.arch.families  # noqa: F401  (registers the family tables)
from kinherit.arch.bind import Bound, bind
from kinherit.arch.catalog import FAMILIES, detect, register_family, supported
from kinherit.arch.shape import Shape, read_shape, write_shape
from kinherit.arch.spec import Axis, ConfigKeys, FamilySpec, HeadSpec, TensorSpec

__all__ = [
    "FAMILIES",
    "Axis",
    "Bound",
    "ConfigKeys",
    "FamilySpec",
    "HeadSpec",
    "Shape",
    "TensorSpec",
    "bind",
    "detect",
    "read_shape",
    "register_family",
    "supported",
    "write_shape",
]
