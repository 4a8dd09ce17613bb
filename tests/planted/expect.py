"""What a planted adapter declares about itself, so the tests derive their tables from the classes.

A planted bug says on which case it shows, which checks must fail, and the diagnosis each of them
must carry (a catalogue entry of conformance/diagnosis/hypotheses.py, or one the checks give
themselves: `out-dtype`, `effective-epsilon`).
"""
from __future__ import annotations

import inspect
from dataclasses import dataclass
from types import ModuleType


@dataclass(frozen=True)
class Expect:
    case: str  # a case id on which the bug shows
    checks: tuple[str, ...]  # the checks that fail there, each with `diagnosis`
    diagnosis: str  # the diagnosis id
    also: tuple[str, ...] = ()  # more cases with the same failing checks and diagnosis (one finding)

    @property
    def cases(self) -> tuple[str, ...]:
        return (self.case, *self.also)


def planted(module: ModuleType) -> dict[str, Expect]:
    """{"module:Class": its Expect} for every class of `module` that declares one (in its own body:
    a subclass of a planted bug declares its own or none)."""
    return {f"{module.__name__}:{name}": cls.__dict__["expect"]
            for name, cls in inspect.getmembers(module, inspect.isclass)
            if cls.__module__ == module.__name__ and isinstance(cls.__dict__.get("expect"), Expect)}


# Not planted: the numpy reference itself, whose x² overflows on huge inputs.
REFERENCE = {"conformance.adapters.numpy_reference:NumpyReference":
             Expect("f32/4x32/ax-1/eps1e-06/huge/rand/s0", ("forward", "grad_x", "grad_scale"), "range")}


def diagnoses() -> dict[str, Expect]:
    """Every adapter reference with the diagnosis it must get: the planted numpy bugs of
    diagnosable.py, adapters.py and fused.py (the fused forms), and the reference's own range limit."""
    from tests.planted import adapters, diagnosable, fused

    return {**planted(diagnosable), **planted(adapters), **planted(fused), **REFERENCE}
