"""The one builder: baseline and FR networks differ only in the chosen layers."""

import pytest
import torch
from torch import nn

from frinr_core import FourierConfig, FourierLinear, MLPConfig, PositionalEncoding, Sine, build_mlp, nyquist_frequencies


def linears(model: nn.Module) -> list[nn.Module]:
    return [m for m in model if isinstance(m, (nn.Linear, FourierLinear))]


@pytest.mark.parametrize("arch", ["relu", "pe", "siren"])
def test_fr_reparameterizes_exactly_the_hidden_layers(arch):
    small = FourierConfig(low_freqs=4, high_freqs=4, phases=2)
    base = build_mlp(2, 3, MLPConfig(arch=arch, hidden_features=16, hidden_layers=3, fourier=small), samples=64)
    fr = build_mlp(2, 3, MLPConfig(arch=arch, hidden_features=16, hidden_layers=3, fr=True, fourier=small), samples=64)
    kinds = [type(m) for m in linears(fr)]
    assert kinds == [nn.Linear, FourierLinear, FourierLinear, FourierLinear, nn.Linear]
    assert [type(m) for m in linears(base)] == [nn.Linear] * 5
    assert [type(m) for m in fr if not isinstance(m, (nn.Linear, FourierLinear))] == [
        type(m) for m in base if not isinstance(m, (nn.Linear, FourierLinear))
    ]
    assert fr(torch.rand(10, 2)).shape == (10, 3)


def test_sine_layers_use_omega0_and_fr_init_is_divided_by_it():
    config = MLPConfig(arch="siren", hidden_features=16, hidden_layers=1, fr=True, omega0=20.0,
                       fourier=FourierConfig(low_freqs=2, high_freqs=2, phases=2, alpha=0.01))  # fmt: skip
    model = build_mlp(1, 1, config)
    assert [m.omega0 for m in model if isinstance(m, Sine)] == [30.0, 20.0]
    assert [m.omega0 for m in model if isinstance(m, FourierLinear)] == [20.0]


def test_chosen_fr_layers_and_out_of_range_error():
    config = MLPConfig(hidden_features=8, hidden_layers=2, fr=True, fr_layers=(0, 3),
                       fourier=FourierConfig(low_freqs=2, high_freqs=2, phases=2))  # fmt: skip
    assert [isinstance(m, FourierLinear) for m in linears(build_mlp(2, 1, config))] == [True, False, False, True]
    with pytest.raises(ValueError, match="fr_layers"):
        build_mlp(2, 1, MLPConfig(hidden_layers=2, fr=True, fr_layers=(4,)))


def test_positional_encoding_nyquist_default_and_layout():
    assert nyquist_frequencies(512) == 7  # floor(log2(512 / 4))
    model = build_mlp(2, 3, MLPConfig(arch="pe", hidden_features=8, hidden_layers=1), samples=512)
    encoding = model[0]
    assert isinstance(encoding, PositionalEncoding) and encoding.num_frequencies == 7
    x = torch.tensor([[0.25, -0.5]])
    encoded = encoding(x)
    assert encoded.shape == (1, 2 * (1 + 2 * 7))
    torch.testing.assert_close(encoded[0, :2], x[0])
    k = 3  # octave 3, coordinate 1: (sin, cos) at columns 2 + 4k + 2, 2 + 4k + 3
    angle = torch.tensor(2**k * torch.pi * -0.5)
    torch.testing.assert_close(encoded[0, 2 + 4 * k + 2 : 2 + 4 * k + 4], torch.stack([angle.sin(), angle.cos()]))


def test_pe_without_sample_count_is_refused():
    with pytest.raises(ValueError, match="pe_frequencies"):
        build_mlp(2, 3, MLPConfig(arch="pe"))
