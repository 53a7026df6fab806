"""Grow a trained model into a bigger shape: width and depth operators, plan, replay, verify."""

from kinherit.grow.api import build_model, grow, grow_folder
from kinherit.grow.depth import DEPTH_OPERATORS, register_depth
from kinherit.grow.plan import GrowthPlan, grow_map, load_plan, make_plan, replay
from kinherit.grow.verify import Comparison, GrowthReport
from kinherit.grow.width import WIDTH_OPERATORS, WidthOperator, register_width

__all__ = [
    "DEPTH_OPERATORS",
    "WIDTH_OPERATORS",
    "Comparison",
    "GrowthPlan",
    "GrowthReport",
    "WidthOperator",
    "build_model",
    "grow",
    "grow_folder",
    "grow_map",
    "load_plan",
    "make_plan",
    "register_depth",
    "register_width",
    "replay",
]
