"""FourierLinear against the paper's formula, its init, caching, folding and checkpoint contents."""

import math

import pytest
import torch
from torch import nn

from frinr_core import FourierLinear, fold_fourier_layers
from frinr_core.fourier import fourier_bases, fourier_factors


def reference_basis(row: int, column: int, in_features: int, low: int, high: int, phases: int, alpha: float) -> float:
    """B[row, column] straight from the definition, one scalar at a time."""
    freqs = [(i + 1) / low for i in range(low)] + [float(i + 1) for i in range(high)]
    freq, phase = freqs[row // phases], 2 * math.pi * (row % phases) / phases
    period = 2 * math.pi / min(freqs)
    x = -period / 2 + column * period / (in_features - 1)
    return alpha * math.cos(freq * x + phase)


@pytest.mark.parametrize(("low", "high"), [(4, 3), (0, 5), (6, 0)])
def test_bases_match_formula_in_both_bands(low, high):
    layer = FourierLinear(7, 5, low_freqs=low, high_freqs=high, phases=3, alpha=0.05)
    assert layer.bases.shape == ((low + high) * 3, 7)
    rows = [0, 2, 3, layer.bases.shape[0] - 1, low * 3, low * 3 + 4]
    for row in [r for r in rows if r < layer.bases.shape[0]]:
        for column in (0, 3, 6):
            expected = reference_basis(row, column, 7, low, high, 3, 0.05)
            assert layer.bases[row, column].item() == pytest.approx(expected, abs=1e-6)


def test_lowest_frequency_spans_one_period():
    layer = FourierLinear(16, 2, low_freqs=8, high_freqs=8, phases=4, alpha=1.0)
    first = layer.bases[0]  # frequency 1/L, phase 0: cos over exactly one period, so both ends equal -1
    assert first[0].item() == pytest.approx(-1.0, abs=1e-6) and first[-1].item() == pytest.approx(-1.0, abs=1e-6)


@pytest.mark.parametrize("omega0", [None, 30.0])
def test_coefficient_init_bounds_and_zero_bias(omega0):
    torch.manual_seed(0)
    layer = FourierLinear(32, 400, low_freqs=4, high_freqs=4, phases=8, alpha=0.05, omega0=omega0)
    num_bases = layer.bases.shape[0]
    bound = math.sqrt(6 / num_bases) / layer.bases.norm(dim=1) / (omega0 or 1)  # (M,)
    spread = layer.coeffs.abs().amax(dim=0)  # (M,)
    assert torch.all(spread <= bound + 1e-7)
    assert torch.all(spread >= 0.9 * bound)  # 400 uniform draws per column reach close to the bound
    assert torch.count_nonzero(layer.bias) == 0


def test_only_coeffs_and_bias_train_and_bases_are_not_saved():
    layer = FourierLinear(8, 4, low_freqs=2, high_freqs=2, phases=2)
    assert {name for name, p in layer.named_parameters() if p.requires_grad} == {"coeffs", "bias"}
    assert set(layer.state_dict()) == {"coeffs", "bias"}
    restored = FourierLinear(8, 4, low_freqs=2, high_freqs=2, phases=2)
    restored.load_state_dict(layer.state_dict())
    x = torch.randn(3, 8)
    assert torch.equal(restored(x), layer(x))


def test_fold_matches_outputs():
    torch.manual_seed(1)
    layer = FourierLinear(64, 48, low_freqs=16, high_freqs=16, phases=8, alpha=0.05)
    with torch.no_grad():
        layer.bias.normal_()
    folded = layer.fold()
    assert type(folded) is nn.Linear
    x = torch.randn(100, 64)
    assert (folded(x) - layer(x)).abs().max().item() <= 1e-5


def test_fold_fourier_layers_replaces_every_fr_layer_in_place():
    torch.manual_seed(2)
    model = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), FourierLinear(16, 16, low_freqs=2, high_freqs=2, phases=2),
                          nn.Sequential(FourierLinear(16, 4, low_freqs=2, high_freqs=2, phases=2)))  # fmt: skip
    x = torch.randn(10, 3)
    before = model(x).detach()
    assert fold_fourier_layers(model) is model
    assert not any(isinstance(m, FourierLinear) for m in model.modules())
    assert (model(x) - before).abs().max().item() <= 1e-5


def test_cached_weight_gives_the_uncached_gradients():
    torch.manual_seed(3)
    layer = FourierLinear(12, 6, low_freqs=3, high_freqs=3, phases=4)
    x1, x2 = torch.randn(5, 12, requires_grad=True), torch.randn(7, 12)
    # Two calls per step (as a proposal sampler and the main pass would) sharing the cached weight.
    loss = layer(x1).pow(2).sum() + layer(x2).sin().sum()
    loss.backward()
    cached = (layer.coeffs.grad.clone(), layer.bias.grad.clone(), x1.grad.clone())

    coeffs, bias = layer.coeffs.detach().clone().requires_grad_(), layer.bias.detach().clone().requires_grad_()
    x1_ref = x1.detach().clone().requires_grad_()
    weight = coeffs @ layer.bases
    reference = (
        nn.functional.linear(x1_ref, weight, bias).pow(2).sum() + nn.functional.linear(x2, weight, bias).sin().sum()
    )
    reference.backward()
    for got, want in zip(cached, (coeffs.grad, bias.grad, x1_ref.grad), strict=True):
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)


def test_weight_is_computed_once_per_update_and_refreshed_after_step():
    layer = FourierLinear(10, 4, low_freqs=2, high_freqs=2, phases=3)
    optimizer = torch.optim.Adam(layer.parameters(), lr=1e-2)
    first = layer.weight
    layer(torch.randn(2, 10)).sum().backward()
    with torch.no_grad():
        layer(torch.randn(2, 10))
    assert layer.weight is first  # reused by training and no-grad calls alike
    optimizer.step()
    refreshed = layer.weight
    assert refreshed is not first
    torch.testing.assert_close(refreshed, layer.coeffs.detach() @ layer.bases)
    assert not torch.allclose(refreshed, first)


def test_cache_follows_a_fused_optimizer_step():
    """torch's fused optimizers update parameters without bumping their version counter; W must still follow."""
    layer = FourierLinear(6, 3, low_freqs=2, high_freqs=1, phases=2)
    optimizer = torch.optim.Adam(layer.parameters(), lr=1e-2, fused=True)
    first = layer.weight
    layer(torch.randn(4, 6)).square().sum().backward()
    version = layer.coeffs._version
    optimizer.step()
    assert layer.coeffs._version == version  # what the cache cannot rely on
    torch.testing.assert_close(layer.weight, layer.coeffs.detach() @ layer.bases)
    assert not torch.allclose(layer.weight, first)


def test_cache_follows_load_state_dict():
    layer, other = (FourierLinear(6, 3, low_freqs=2, high_freqs=1, phases=2) for _ in range(2))
    _ = layer.weight
    layer.load_state_dict(other.state_dict())
    torch.testing.assert_close(layer.weight, other.weight)


def test_two_backward_passes_through_the_cached_weight():
    layer = FourierLinear(6, 3, low_freqs=2, high_freqs=1, phases=2)
    layer(torch.randn(4, 6)).sum().backward()
    layer(torch.randn(4, 6)).sum().backward()  # a shared autograd graph would fail here
    assert layer.coeffs.grad is not None


def test_torch_func_jacobian_works():
    layer = FourierLinear(5, 2, low_freqs=2, high_freqs=2, phases=2)
    params = dict(layer.named_parameters())
    x = torch.randn(3, 5)
    jac = torch.func.jacrev(lambda p: torch.func.functional_call(layer, p, (x,)))(params)
    expected = torch.einsum("no,ni,mi->nom", torch.ones(3, 2), x, layer.bases)  # d y[n,o] / d coeffs[o,m]
    torch.testing.assert_close(torch.einsum("nopm->nom", jac["coeffs"]), expected)


@pytest.mark.parametrize(
    ("kwargs", "name"),
    [
        ({"phases": 0}, "phases"),
        ({"low_freqs": 0, "high_freqs": 0}, "low_freqs"),
        ({"in_features": 1}, "in_features"),
        ({"alpha": 0.0}, "alpha"),
        ({"alpha": -1.0}, "alpha"),
        ({"alpha": float("nan")}, "alpha"),
        ({"omega0": float("inf")}, "omega0"),
        ({"low_freqs": -2}, "low_freqs"),
    ],
)
def test_invalid_settings_name_the_argument(kwargs, name):
    arguments = {"in_features": 8, "out_features": 4} | kwargs
    with pytest.raises(ValueError, match=name):
        FourierLinear(arguments.pop("in_features"), arguments.pop("out_features"), **arguments)


SIZES = [(256, 128, 128, 32), (64, 32, 32, 64), (7, 3, 0, 5)]  # (in, L, H, P): paper 2D, paper NGP, odd


@pytest.mark.parametrize(("in_features", "low", "high", "phases"), SIZES)
def test_factors_rebuild_the_bases_and_the_weight(in_features: int, low: int, high: int, phases: int) -> None:
    """The fast route (2F waves × P phase mixes) is the same B, so W equals the plain product."""
    bases = fourier_bases(in_features, low, high, phases, 0.05)
    waves, phase_mix = fourier_factors(in_features, low, high, phases, 0.05)
    rebuilt = (phase_mix[None] @ waves.view(-1, 2, in_features)).reshape(-1, in_features)  # (F, P, in) -> (M, in)
    torch.testing.assert_close(rebuilt, bases, rtol=0, atol=1e-6)
    layer = FourierLinear(in_features, 5, low_freqs=low, high_freqs=high, phases=phases, alpha=0.05)
    torch.testing.assert_close(layer.weight, layer.coeffs.detach() @ bases, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("in_features", "freqs"), [(32, 32), (128, 128)])  # NGP density input; occupancy-cpu preset
def test_bases_that_alias_to_zero_start_with_zero_coefficients(in_features: int, freqs: int) -> None:
    """At ``in`` samples, frequency ``in - 1`` (and ``(in - 1)/L``) is constant over x: the rows whose phase puts that
    constant at 0 vanish. Scaling their coefficients by 1/‖B_i‖ ≈ 1e16 made W depend on rounding noise."""
    torch.manual_seed(4)
    layer = FourierLinear(in_features, 16, low_freqs=freqs, high_freqs=freqs, phases=64, alpha=0.01)
    # cos(a + kd) vanishing at three consecutive samples means d is a multiple of π: the whole row is zero.
    rows = range(layer.bases.shape[0])
    starts = [[reference_basis(r, c, in_features, freqs, freqs, 64, 1.0) for c in (0, 1, 2)] for r in rows]
    identically_zero = torch.tensor(starts).abs().amax(dim=1) < 1e-9  # (M,)
    assert identically_zero.sum() == 4  # the two aliasing frequencies at phases π/2 and 3π/2
    assert torch.all(layer.bases[identically_zero] == 0) and torch.all(layer.coeffs[:, identically_zero] == 0)
    assert layer.coeffs.abs().max() < 10  # the other columns keep their ±sqrt(6/M)/‖B_i‖ range
    torch.testing.assert_close(layer.weight, layer.coeffs.detach() @ layer.bases, rtol=1e-5, atol=1e-6)


LOW_PRECISION = {"cpu": torch.bfloat16, "cuda": torch.float16}  # what autocast uses on each device
LOW_TOLERANCE = {"rtol": 3e-2, "atol": 3e-2}  # bfloat16 keeps 8 bits of mantissa, float16 11
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"))]


@pytest.mark.parametrize("device", DEVICES)
def test_autocast_keeps_the_cached_weight_in_full_precision(device: str) -> None:
    """Under autocast (bfloat16 on the CPU, float16 on CUDA) W is still computed and cached in the parameters' dtype,
    so a call without autocast afterwards (viewer thread, occupancy refresh, evaluation) works and gives the
    full-precision result."""
    torch.manual_seed(5)
    layer, x = FourierLinear(32, 16, low_freqs=4, high_freqs=4, phases=8).to(device), torch.randn(8, 32, device=device)
    reference = layer(x).detach()
    layer._cache = None  # the first product of this update happens under autocast
    with torch.autocast(device, dtype=LOW_PRECISION[device]):
        low = layer(x)
    assert low.dtype == LOW_PRECISION[device] and layer.weight.dtype == torch.float32
    torch.testing.assert_close(low.float(), reference, **LOW_TOLERANCE)
    assert torch.equal(layer(x), reference)  # outside autocast: exactly the float32 layer
    with torch.autocast(device, dtype=LOW_PRECISION[device]):
        torch.testing.assert_close(layer(x).float(), reference, **LOW_TOLERANCE)


@pytest.mark.parametrize("device", DEVICES)
def test_autocast_gradients_match_full_precision_within_its_precision(device: str) -> None:
    torch.manual_seed(6)
    layer, x = FourierLinear(24, 8, low_freqs=3, high_freqs=3, phases=4).to(device), torch.randn(64, 24, device=device)
    layer(x).pow(2).sum().backward()
    full = (layer.coeffs.grad.clone(), layer.bias.grad.clone())
    layer.zero_grad()
    with torch.autocast(device, dtype=LOW_PRECISION[device]):
        loss = layer(x).float().pow(2).sum()
        loss.backward()  # a backward inside autocast, as an autocast user may write it
    assert layer.coeffs.grad.dtype == layer.bias.grad.dtype == torch.float32
    for got, want in zip((layer.coeffs.grad, layer.bias.grad), full, strict=True):
        assert (got - want).norm() <= 2e-2 * want.norm()


def test_another_thread_without_autocast_uses_the_weight_cached_under_autocast() -> None:
    """Autocast is per thread: nerfstudio's viewer renders from its own thread while training runs under autocast."""
    import threading

    torch.manual_seed(7)
    layer, x = FourierLinear(16, 4, low_freqs=2, high_freqs=2, phases=4), torch.randn(5, 16)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        layer(x)
    seen = {}
    thread = threading.Thread(target=lambda: seen.update(out=layer(x), autocast=torch.is_autocast_enabled("cpu")))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        thread.start()
        thread.join()
    assert seen["autocast"] is False and seen["out"].dtype == torch.float32
    torch.testing.assert_close(seen["out"], nn.functional.linear(x, layer.coeffs.detach() @ layer.bases, layer.bias))


def test_fold_after_autocast_training_is_full_precision() -> None:
    torch.manual_seed(8)
    layer, x = FourierLinear(16, 4, low_freqs=2, high_freqs=2, phases=4), torch.randn(32, 16)
    optimizer = torch.optim.Adam(layer.parameters(), lr=1e-2)
    for _ in range(3):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            loss = layer(x).float().pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        layer(x)  # W of the final coefficients cached under autocast
        folded = layer.fold()
    assert folded.weight.dtype == torch.float32
    torch.testing.assert_close(folded(x), layer(x), rtol=1e-5, atol=1e-6)
