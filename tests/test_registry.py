import pytest

from kinherit.errors import KinheritError
from kinherit.registry import Registry


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
