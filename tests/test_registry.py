import pytest

from kinherit.errors import KinheritError
from kinherit.registry import Registry, known


def test_registry_rejects_duplicates_and_names_the_choices():
    ops = Registry("operator")
    ops.register("double")(lambda x: 2 * x)
    ops.add("square", lambda x: x * x)
    assert ops.lookup("double")(3) == 6 and sorted(ops) == ["double", "square"]
    with pytest.raises(ValueError, match="operator 'double' registered twice"):
        ops.add("double", abs)
    with pytest.raises(KinheritError, match="unknown operator 'cube'; choose one of double, square") as err:
        ops.lookup("cube")
    assert isinstance(err.value, ValueError)  # so pydantic validators report it against the config key


def test_known_checks_a_config_field_with_the_lookup_wording():
    from typing import Annotated

    from pydantic import BaseModel, ValidationError

    ops = Registry("operator")
    ops.add("double", abs)

    class Options(BaseModel):
        op: Annotated[str | None, known(ops)] = None
        mode: Annotated[str, known(("fast", "slow"), "mode")] = "fast"

    assert Options().op is None and Options(op="double").op == "double"
    with pytest.raises(
        ValidationError, match=r"unknown operator 'doubel'; choose one of double \(did you mean 'double'\?\)"
    ):
        Options(op="doubel")
    with pytest.raises(
        ValidationError, match=r"unknown mode 'fats'; choose one of fast, slow \(did you mean 'fast'\?\)"
    ):
        Options(mode="fats")
    assert Options.model_fields["op"].annotation == str | None  # --help-config shows the plain type


def test_entries_carry_their_reference():
    ops = Registry("operator")
    ops.register("double", reference="Doubling et al. 2020, https://example.org/double")(lambda x: 2 * x)
    ops.add("plain", abs)
    assert ops.references == {"double": "Doubling et al. 2020, https://example.org/double"}
    assert ops.describe() == ["double — Doubling et al. 2020, https://example.org/double", "plain — no reference"]


def test_every_operator_schedule_and_family_has_a_reference():
    from kinherit.arch import FAMILIES
    from kinherit.grow.depth import DEPTH_OPERATORS
    from kinherit.grow.upcycle import MOE_TARGETS
    from kinherit.grow.width import WIDTH_OPERATORS
    from kinherit.kd.cross_tokenizer import METHODS
    from kinherit.kd.losses import KD_LOSSES
    from kinherit.kd.schedules import SCHEDULES

    for registry in (WIDTH_OPERATORS, DEPTH_OPERATORS, SCHEDULES, FAMILIES, MOE_TARGETS, KD_LOSSES, METHODS):
        assert set(registry.references) == set(registry), registry.kind
        for reference in registry.references.values():
            assert "https://" in reference and any(str(year) in reference for year in range(2015, 2026)), reference
