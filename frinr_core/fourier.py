"""Fourier reparameterized linear layer (Shi, Zhou & Gu, CVPR 2024).

The weight of an FR layer is ``W = coeffs @ bases``: a fixed matrix of cosine bases ``B`` (M × in) and
learnable coefficients ``Λ`` (out × M). Training Λ instead of W reshapes the gradient flow so that the
network learns high frequencies sooner (less spectral bias). After training, W is an ordinary matrix:
:func:`fold_fourier_layers` turns every FR layer into a ``torch.nn.Linear``, so FR costs nothing at
inference.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn


def _check_positive_int(name: str, value: int, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")


def _check_positive_float(name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")


def _sampling(in_features: int, low_freqs: int, high_freqs: int, phases: int) -> tuple[Tensor, Tensor, Tensor]:
    """Frequencies (F,) low ``1/L … 1`` then high ``1 … H``, phases (P,) ``2πp/P`` and sample points (in,), float64."""
    freqs = torch.cat(
        [torch.arange(1, low_freqs + 1, dtype=torch.float64) / low_freqs, torch.arange(1, high_freqs + 1).double()]
    )
    phis = 2 * math.pi * torch.arange(phases, dtype=torch.float64) / phases
    period = 2 * math.pi / freqs.min()
    return freqs, phis, torch.linspace(-period / 2, period / 2, in_features, dtype=torch.float64)


def fourier_bases(in_features: int, low_freqs: int, high_freqs: int, phases: int, alpha: float) -> Tensor:
    """The fixed basis matrix B, shape ``((low_freqs + high_freqs) * phases, in_features)``.

    Row ``(f, φ)`` is ``alpha * cos(f * x + φ)`` at ``x = linspace(-T/2, T/2, in_features)`` with
    ``T = 2π / min(f)``: the lowest frequency completes exactly one period across the input axis.
    Rows are ordered low frequencies ``1/L … 1`` first, then high ``1 … H``, each over all phases.
    """
    freqs, phis, x = _sampling(in_features, low_freqs, high_freqs, phases)
    angles = freqs[:, None, None] * x[None, None, :] + phis[None, :, None]  # (F, P, in)
    return (alpha * torch.cos(angles)).reshape(-1, in_features).float()


def fourier_factors(
    in_features: int, low_freqs: int, high_freqs: int, phases: int, alpha: float
) -> tuple[Tensor, Tensor]:
    """B through its 2F distinct waves: ``cos(f x + φ) = cos φ · cos f x − sin φ · sin f x``.

    Returns ``waves`` (2F, in), rows ``alpha·cos(f x), alpha·sin(f x)`` per frequency, and ``phase_mix`` (P, 2),
    rows ``(cos φ, −sin φ)``, so that row ``(f, p)`` of B is ``phase_mix[p] @ waves[2f : 2f + 2]``. B has rank at
    most 2F, far below its M = F·P rows: products with B cost P times less through the factors.
    """
    freqs, phis, x = _sampling(in_features, low_freqs, high_freqs, phases)
    angles = freqs[:, None] * x[None, :]  # (F, in)
    waves = alpha * torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)  # (F, 2, in)
    phase_mix = torch.stack([torch.cos(phis), -torch.sin(phis)], dim=1)  # (P, 2)
    return waves.reshape(-1, in_features).float(), phase_mix.float()


def _weight_of(coeffs: Tensor, waves: Tensor, phase_mix: Tensor) -> Tensor:
    """``Λ B`` (out, in) from Λ (out, M) through the factors: out·M·2 + out·2F·in multiply-adds, not out·M·in."""
    mixed = coeffs.reshape(coeffs.shape[0], -1, phase_mix.shape[0]) @ phase_mix  # (out, F, 2)
    return mixed.reshape(coeffs.shape[0], -1) @ waves


def _coeffs_grad(grad_weight: Tensor, waves: Tensor, phase_mix: Tensor) -> Tensor:
    """``dL/dΛ = dL/dW · Bᵀ`` (out, M) through the factors."""
    per_wave = (grad_weight @ waves.T).reshape(grad_weight.shape[0], -1, 2)  # (out, F, 2)
    return (per_wave @ phase_mix.T).reshape(grad_weight.shape[0], -1)


class _CachedWeightLinear(torch.autograd.Function):
    """``y = x Wᵀ + b`` with a precomputed ``W = Λ B``, differentiating into Λ directly.

    Reusing one W across calls cannot share an autograd graph (a second ``backward`` would find it freed),
    so each call gets its own node whose backward is the chain rule through ``W = Λ B``:
    ``dΛ = (gᵀ x) Bᵀ`` — exactly the gradient of the uncached computation.

    Mixed precision: W arrives in the parameters' dtype. Under autocast the product runs in autocast's dtype
    (``F.linear`` is on its lower-precision list), outside it in ``x``'s dtype; the backward product
    ``gᵀ x`` runs in the gradient's dtype, and the chain rule into Λ in Λ's dtype, whatever the autocast
    state of the thread that runs the backward.
    """

    @staticmethod
    def forward(x: Tensor, coeffs: Tensor, bias: Tensor, weight: Tensor, waves: Tensor, phase_mix: Tensor) -> Tensor:
        if not torch.is_autocast_enabled(x.device.type):
            weight, bias = weight.to(x.dtype), bias.to(x.dtype)
        return nn.functional.linear(x, weight, bias)

    @staticmethod
    def setup_context(ctx, inputs, output) -> None:
        x, _, _, weight, waves, phase_mix = inputs
        ctx.save_for_backward(x, weight, waves, phase_mix)

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        x, weight, waves, phase_mix = ctx.saved_tensors
        grad_x = grad_coeffs = grad_bias = None
        with torch.autocast(grad_out.device.type, enabled=False):
            if ctx.needs_input_grad[0]:
                grad_x = (grad_out @ weight.to(grad_out.dtype)).to(x.dtype)
            flat_grad = grad_out.reshape(-1, grad_out.shape[-1])  # (N, out)
            if ctx.needs_input_grad[1]:
                grad_weight = flat_grad.T @ x.reshape(-1, x.shape[-1]).to(flat_grad.dtype)  # (out, in)
                grad_coeffs = _coeffs_grad(grad_weight.to(waves.dtype), waves, phase_mix)  # (out, M)
            if ctx.needs_input_grad[2]:
                grad_bias = flat_grad.sum(0).to(weight.dtype)
        return grad_x, grad_coeffs, grad_bias, None, None, None


class FourierLinear(nn.Module):
    """A linear layer whose weight is ``coeffs @ bases`` (Fourier reparameterized training).

    Only ``coeffs`` (out × M) and ``bias`` (out) are parameters; ``bases`` (M × in) is a non-persistent
    buffer rebuilt from the constructor arguments, so checkpoints hold just what was trained.

    Args:
        in_features, out_features: as ``nn.Linear``.
        low_freqs: L, the number of low frequencies ``1/L, 2/L, …, 1``.
        high_freqs: H, the number of high frequencies ``1, 2, …, H``.
        phases: P, phases ``2πp/P`` per frequency; M = (L + H)·P bases.
        alpha: amplitude of every basis (paper: 0.05 for ReLU, 0.01 for sine networks).
        omega0: for sine networks, the init range is divided by it as in SIREN.
    """

    def __init__(
        self,
        in_features: int,
        out_features: int,
        *,
        low_freqs: int = 128,
        high_freqs: int = 128,
        phases: int = 32,
        alpha: float = 0.05,
        omega0: float | None = None,
    ) -> None:
        super().__init__()
        _check_positive_int("in_features", in_features, minimum=2)
        _check_positive_int("out_features", out_features)
        _check_positive_int("low_freqs", low_freqs, minimum=0)
        _check_positive_int("high_freqs", high_freqs, minimum=0)
        _check_positive_int("phases", phases)
        if low_freqs + high_freqs == 0:
            raise ValueError("low_freqs + high_freqs must be >= 1: an FR layer needs at least one frequency")
        _check_positive_float("alpha", alpha)
        if omega0 is not None:
            _check_positive_float("omega0", omega0)
        self.in_features, self.out_features = in_features, out_features
        self.low_freqs, self.high_freqs, self.phases = low_freqs, high_freqs, phases
        self.alpha, self.omega0 = alpha, omega0

        bases = fourier_bases(in_features, low_freqs, high_freqs, phases, alpha)  # (M, in): the definition
        norms = bases.norm(dim=1)  # (M,)
        # A frequency that aliases to a constant at this width (f = 31 at 32 inputs, 127 at 128) makes the rows whose
        # phase puts that constant at 0 vanish. Their float norms are ~1e-16, so ±sqrt(6/M)/‖B_i‖ would start their
        # coefficients at ~1e14, and the rounding noise of 1e14 × 1e-16 would leak into W. They are zero rows: their
        # coefficients start at 0 and W is exactly the layer the other bases define.
        vanished = norms <= 1e-6 * norms.max()
        bases[vanished] = 0
        self.register_buffer("bases", bases, persistent=False)
        waves, phase_mix = fourier_factors(in_features, low_freqs, high_freqs, phases, alpha)  # the fast route
        self.register_buffer("waves", waves, persistent=False)
        self.register_buffer("phase_mix", phase_mix, persistent=False)
        num_bases = self.bases.shape[0]
        bound = torch.where(vanished, 0.0, math.sqrt(6 / num_bases) / norms)  # (M,): one range per column of Λ
        if omega0 is not None:
            bound = bound / omega0
        self.coeffs = nn.Parameter((torch.rand(out_features, num_bases) * 2 - 1) * bound)
        self.bias = nn.Parameter(torch.zeros(out_features))
        self._cache: tuple[tuple, Tensor, Tensor] | None = None  # (key, coefficients, W)

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, low_freqs={self.low_freqs}, "
            f"high_freqs={self.high_freqs}, phases={self.phases}, alpha={self.alpha}, omega0={self.omega0}"
        )

    def _cache_key(self) -> tuple:
        # .to()/.cuda() swap the storage (data_ptr); optimizer steps, load_state_dict and DDP broadcasts modify coeffs
        # in place, bumping _version, except fused optimizers (torch.optim.Adam(fused=True)), whose kernels write
        # without bumping it: the cache also keeps the coefficients it was computed from and compares them.
        c = self.coeffs
        return (c.data_ptr(), c._version, c.device, c.dtype, self.waves.data_ptr())

    def _product(self) -> Tensor:
        """``Λ B`` (out, in) in the parameters' dtype, whatever autocast is doing in the calling thread."""
        with torch.autocast(self.coeffs.device.type, enabled=False):
            return _weight_of(self.coeffs, self.waves.to(self.coeffs.dtype), self.phase_mix.to(self.coeffs.dtype))

    @property
    def weight(self) -> Tensor:
        """W = Λ·B (out × in) in the parameters' dtype, computed once per coefficient update and detached (gradients
        go via forward). Kept out of autocast: a W cached in float16 during a mixed-precision training step would
        break every later call without autocast (the viewer's thread, the occupancy-grid refresh, evaluation)."""
        key, coeffs = self._cache_key(), self.coeffs.detach()
        cache = self._cache  # one read: another thread (the viewer) may replace it meanwhile
        if cache is None or cache[0] != key or not torch.equal(cache[1], coeffs):
            with torch.no_grad():
                cache = self._cache = (key, coeffs.clone(), self._product())
        return cache[2]

    def forward(self, x: Tensor) -> Tensor:  # (..., in) -> (..., out)
        wrapped = torch._C._functorch.is_functorch_wrapped_tensor
        if wrapped(self.coeffs) or wrapped(x):
            # torch.func transforms (vmap/jacrev over parameters or inputs) need the plain differentiable expression.
            return nn.functional.linear(x, self._product(), self.bias)
        return _CachedWeightLinear.apply(x, self.coeffs, self.bias, self.weight, self.waves, self.phase_mix)

    def fold(self) -> nn.Linear:
        """A plain ``nn.Linear`` computing the same function, for deployment."""
        linear = nn.Linear(self.in_features, self.out_features, device=self.coeffs.device, dtype=self.coeffs.dtype)
        with torch.no_grad():
            linear.weight.copy_(self._product())
            linear.bias.copy_(self.bias)
        return linear


def fold_fourier_layers(module: nn.Module) -> nn.Module:
    """Replace every :class:`FourierLinear` inside ``module`` by its folded ``nn.Linear``, in place.

    Returns ``module`` (or the folded layer itself when ``module`` is a FourierLinear).
    """
    if isinstance(module, FourierLinear):
        return module.fold()
    for name, child in module.named_children():
        setattr(module, name, fold_fourier_layers(child))
    return module
