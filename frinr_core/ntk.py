"""Empirical neural tangent kernel: how evenly a network's training dynamics spread over its eigenmodes.

Under gradient descent on MSE, the residual along the k-th NTK eigenvector decays at a rate proportional
to the k-th eigenvalue. A spectrum dominated by a few large eigenvalues (low-frequency modes) means the
other components are learnt slowly — spectral bias. FR is meant to flatten this spectrum.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.func import functional_call, jacrev, vmap


def empirical_ntk(model: nn.Module, inputs: Tensor, chunk: int = 64) -> Tensor:
    """``K = J Jᵀ`` (N × N, float64) for a scalar-output ``model`` at ``inputs`` (N, in).

    ``J = ∂f(x)/∂θ`` over the trained parameters (for FR layers the coefficients Λ, not the folded weight).
    One parameter tensor at a time, in sample chunks, so the whole Jacobian is never held at once.
    """
    params = {name: p.detach() for name, p in model.named_parameters() if p.requires_grad}
    kernel = torch.zeros(len(inputs), len(inputs), dtype=torch.float64)
    for name in params:

        def output(value: Tensor, x: Tensor, name: str = name) -> Tensor:  # (in,) -> scalar
            return functional_call(model, {**params, name: value}, (x[None],)).reshape(())

        per_sample = vmap(jacrev(output), in_dims=(None, 0))
        jacobian = torch.cat([per_sample(params[name], part).flatten(1) for part in inputs.split(chunk)])  # (N, P)
        kernel += (jacobian @ jacobian.T).double()
    return kernel


def eigenvalue_shares(kernel: Tensor, top: int = 4) -> list[float]:
    """Shares of the ``top`` largest eigenvalues of a PSD kernel, then the share of all the others."""
    eigenvalues = torch.linalg.eigvalsh(kernel).clamp(min=0).flip(0)  # descending; tiny negatives are rounding
    total = float(eigenvalues.sum())
    if total <= 0:
        return [0.0] * (top + 1)
    shares = [float(v) / total for v in eigenvalues[:top]]
    return shares + [max(0.0, 1.0 - sum(shares))]
