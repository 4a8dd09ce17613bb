"""The adapter contract as documented (docs/adapters.md) is the contract in code (conformance/adapter.py):
no method documented that the base class lacks, none declared that is undocumented."""
import inspect
import re
from pathlib import Path

from conformance.adapter import OPTIONAL, REQUIRED, Adapter

DOC = Path(__file__).resolve().parents[2] / "docs" / "adapters.md"
ATTRIBUTES = ("name", "env", "device_family", "worker_group", "packages", "owners", "fused_add_sum", "fused_add_in_place")


def documented() -> list[str]:
    """The first-column names of the contract's table: rows starting with "| `name` |"."""
    return re.findall(r"^\|\s*`([A-Za-z_]+)(?:\(\))?`\s*\|", DOC.read_text(), flags=re.M)


def test_every_method_of_the_base_is_documented_and_nothing_else():
    declared = {n for n, v in vars(Adapter).items() if inspect.isfunction(v) and not n.startswith("_")}
    assert declared == set(REQUIRED) | set(OPTIONAL)  # the code's own two lists cover the class
    names = documented()
    assert len(names) == len(set(names)), "a name has two rows"
    assert set(names) - set(ATTRIBUTES) == declared


def test_every_attribute_is_documented():
    assert set(ATTRIBUTES) <= set(documented())
    for a in ATTRIBUTES:
        assert hasattr(Adapter, a)


def test_every_optional_method_says_what_it_enables_and_raises_not_provided():
    for method, enables in OPTIONAL.items():
        assert enables and getattr(Adapter, method).__doc__, method
        try:
            getattr(Adapter(), method)(*[None] * (len(inspect.signature(getattr(Adapter, method)).parameters) - 1))
        except NotImplementedError as exc:
            assert method in str(exc)
        else:
            raise AssertionError(f"Adapter.{method} does not raise NotImplementedError")
