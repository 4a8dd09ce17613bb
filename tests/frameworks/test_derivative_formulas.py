"""The float64 second-order formula of the hvp property against a framework's own autodiff."""
import numpy as np
import pytest

from conformance.checks.properties import hvp_reference


@pytest.mark.frameworks
def test_hvp_formula_agrees_with_torch_double_backward_in_float64():
    torch = pytest.importorskip("torch")
    rng = np.random.default_rng(1)
    x, dy, v = (rng.standard_normal((4, 2, 6)) for _ in range(3))
    scale, axes, eps = rng.uniform(0.5, 2, (2, 6)), (1, 2), 0.0
    xt = torch.tensor(x, requires_grad=True)
    y = torch.nn.functional.rms_norm(xt, (2, 6), torch.tensor(scale), eps)
    (dx,) = torch.autograd.grad(y, xt, torch.tensor(dy), create_graph=True)
    (hv,) = torch.autograd.grad((dx * torch.tensor(v)).sum(), xt)
    np.testing.assert_allclose(hvp_reference(x, scale, dy, v, axes, eps)[0], hv.numpy(), rtol=1e-10, atol=1e-12)
