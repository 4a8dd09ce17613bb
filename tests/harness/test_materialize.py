"""A case's arrays follow from its id alone: the same bits in another process (a worker's)."""
import subprocess
import sys

import numpy as np

from conformance.cases.case import Case, materialize


def test_materialize_is_deterministic_across_processes():
    case = Case((3, 16), (-1,), "bfloat16", 1e-6, "mixed", "signed", 5)
    here = materialize(case)
    code = (
        "import sys, numpy as np; from conformance.cases.case import Case, materialize, parse_case;"
        f"a = materialize(Case.from_id('{case.id}'));"
        "sys.stdout.write(a.x.astype(np.float64).tobytes().hex())"
    )
    there = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert there == here.x.astype(np.float64).tobytes().hex()
    assert str(here.x.dtype) == "bfloat16" and here.scale.shape == (16,)
