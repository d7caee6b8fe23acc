"""The compiled CPU hash-grid kernel computes exactly nerfstudio's torch HashEncoding, values and gradients."""

from __future__ import annotations

import logging

import pytest
import torch
from nerfstudio.field_components.encodings import HashEncoding

from frinr_nerfstudio.method import kernels
from frinr_nerfstudio.method.field_components.hash_encoding import CPUHashEncoding

SETTINGS = {"num_levels": 8, "min_res": 4, "max_res": 256, "log2_hashmap_size": 10, "implementation": "torch"}


def encodings(**settings) -> tuple[HashEncoding, CPUHashEncoding]:
    """A stock encoding and ours sharing one table (hash collisions at the fine levels included)."""
    torch.manual_seed(0)
    settings = SETTINGS | settings
    stock, ours = HashEncoding(**settings), CPUHashEncoding(**settings)
    ours.load_state_dict(stock.state_dict())
    return stock, ours


def positions() -> torch.Tensor:
    """Random points, the cube's corners and faces, and points exactly on grid vertices (ceil == floor)."""
    torch.manual_seed(1)
    on_vertices = torch.randint(0, 5, (50, 3)) / 4.0
    return torch.cat([torch.rand(2000, 3), torch.tensor([[0.0, 0, 0], [1, 1, 1], [0, 0.5, 1]]), on_vertices])


def test_kernel_compiles_here() -> None:
    assert kernels.available(), "g++ and ninja are installed here: the kernels must build"


def test_forward_and_table_gradient_match_nerfstudio() -> None:
    stock, ours = encodings()
    x = positions()
    expected, got = stock(x), ours(x)
    assert got.shape == expected.shape == (x.shape[0], 8 * 2)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)
    upstream = torch.randn_like(expected)
    (expected * upstream).sum().backward()
    (got * upstream).sum().backward()
    torch.testing.assert_close(ours.hash_table.grad, stock.hash_table.grad, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("features", [1, 3, 4, 8])
def test_every_width_of_table_row_matches_nerfstudio(features: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """The kernel is compiled per row width (1, 2, 4, 8); any other width runs nerfstudio's code, equally right."""
    stock, ours = encodings(features_per_level=features)
    called = []
    lookup = torch.ops.frinr.hash_grid_forward
    monkeypatch.setattr(torch.ops.frinr, "hash_grid_forward", lambda *a: called.append(1) or lookup(*a), raising=False)
    x = positions()
    expected, got = stock(x), ours(x)
    assert got.shape == (x.shape[0], 8 * features)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-7)
    assert bool(called) == (features != 3)
    upstream = torch.randn_like(expected)
    (expected * upstream).sum().backward()
    (got * upstream).sum().backward()
    torch.testing.assert_close(ours.hash_table.grad, stock.hash_table.grad, rtol=1e-5, atol=1e-6)


def test_batch_shape_kept() -> None:
    stock, ours = encodings()
    x = positions()[:60].view(3, 20, 3)
    torch.testing.assert_close(ours(x), stock(x), rtol=1e-5, atol=1e-7)


def test_position_gradient_matches_nerfstudio(monkeypatch: pytest.MonkeyPatch) -> None:
    """Camera pose refinement backpropagates into the positions: the kernel's gradient there is torch's, and the
    table's gradient with it; also for features replayed from an earlier lookup."""
    stock, ours = encodings()
    called = []
    gradient = torch.ops.frinr.hash_grid_position_grad
    monkeypatch.setattr(torch.ops.frinr, "hash_grid_position_grad", lambda *a: called.append(1) or gradient(*a),
                        raising=False)  # fmt: skip
    upstream = torch.randn(len(positions()), stock.get_out_dim())
    x_stock = positions().requires_grad_()
    (stock(x_stock) * upstream).sum().backward()
    with torch.no_grad():
        known = ours(positions())
    for features in (ours, lambda x: ours.replay(x, known)):
        x_ours = positions().requires_grad_()
        ours.hash_table.grad = None
        (features(x_ours) * upstream).sum().backward()
        assert x_ours.grad.abs().sum() > 0
        torch.testing.assert_close(x_ours.grad, x_stock.grad, rtol=1e-4, atol=1e-5)
        torch.testing.assert_close(ours.hash_table.grad, stock.hash_table.grad, rtol=1e-5, atol=1e-6)
        stock_grad = stock.hash_table.grad
    assert len(called) == 2 and stock_grad is not None


def test_build_failure_falls_back_with_one_warning(monkeypatch: pytest.MonkeyPatch, caplog) -> None:
    def no_compiler(*args, **kwargs):
        raise RuntimeError("g++: command not found\nmore detail")

    stock, ours = encodings()
    monkeypatch.setattr("torch.utils.cpp_extension.load", no_compiler)
    kernels.available.cache_clear()
    try:
        with caplog.at_level(logging.WARNING):
            x = positions()
            torch.testing.assert_close(ours(x), stock(x))
            ours(x)
        warnings = [r for r in caplog.records if "kernels are unavailable" in r.getMessage()]
        assert len(warnings) == 1 and "g++: command not found" in warnings[0].getMessage()
        assert "more detail" not in warnings[0].getMessage()
    finally:
        kernels.available.cache_clear()
