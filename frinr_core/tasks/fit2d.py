"""`frinr fit2d`: fit an image with a coordinate MLP — the paper's 2D experiment.

Flow: load target → build baseline and/or FR network from one builder → train (full image or pixel
batches) → reconstruction PNGs, metrics.json, learning curves and a side-by-side comparison.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

import torch
import tyro
from rich.console import Console
from torch import Tensor

from frinr_core import io, metrics, plots
from frinr_core.errors import InputError
from frinr_core.mlp import MLPConfig, build_mlp
from frinr_core.train import Arm, TrainOptions, arms, count_parameters, fit, sweep


@dataclass
class Fit2dConfig:
    """Fit an image with a ReLU, ReLU+PE or SIREN network, with or without FR (--compare: both)."""

    image: Path | None = None
    """PNG/JPEG/TIFF to fit (grayscale, RGB or RGBA composited on white; 8/16-bit). Default: astronaut."""
    size: int | None = None
    """Resize so the long side has this many pixels (default: keep)."""
    out: Path = Path("outputs/fit2d")
    """Directory for target.png, reconstructions, metrics.json and plots."""
    compare: bool = False
    """Train the baseline and its FR twin on the same data, seed and steps."""
    batch: int | None = None
    """Random pixels per step (default: the whole image, as the paper)."""
    network: Annotated[MLPConfig, tyro.conf.OmitArgPrefixes] = field(default_factory=lambda: MLPConfig(fr=True))
    train: Annotated[TrainOptions, tyro.conf.OmitArgPrefixes] = field(default_factory=TrainOptions)
    preset: str | None = None
    """Start from a preset in configs/ (see `frinr presets`); other flags override it."""
    config: Path | None = None
    """Start from a preset YAML file; other flags override it."""


def pixel_grid(height: int, width: int) -> Tensor:
    """Pixel centres as (H·W, 2) coordinates in [-1, 1]², row-major like the image."""
    ys, xs = torch.linspace(-1, 1, height), torch.linspace(-1, 1, width)
    return torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1).reshape(-1, 2)


def render(model: torch.nn.Module, coords: Tensor, shape: tuple[int, ...], chunk: int = 1 << 16) -> Tensor:
    with torch.no_grad():
        return torch.cat([model(part) for part in coords.split(chunk)]).reshape(shape)


def run(config: Fit2dConfig) -> dict:
    image = io.load_image(config.image, config.size)  # (H, W, C)
    height, width, channels = image.shape
    coords, pixels = pixel_grid(height, width), image.reshape(-1, channels)
    if config.batch is not None and config.batch < 1:
        raise InputError(f"--batch must be a positive number of pixels, got {config.batch}")
    rates = config.train.learning_rates()
    config.out.mkdir(parents=True, exist_ok=True)
    target = torch.from_numpy(io.save_image(config.out / "target.png", image)).reshape(image.shape) / 255

    def batch(generator: torch.Generator) -> tuple[Tensor, Tensor]:
        if config.batch is None or config.batch >= len(coords):
            return coords, pixels
        index = torch.randint(len(coords), (config.batch,), generator=generator)
        return coords[index], pixels[index]

    reconstructions: dict[str, Tensor] = {}  # file name -> the saved pixels, for the comparison figure

    def run_one(arm: Arm, lr: float) -> dict:
        torch.manual_seed(config.train.seed)
        model = build_mlp(2, channels, arm.mlp, samples=min(height, width))
        result = fit(
            model, batch, options=config.train, lr=lr, description=f"{arm.name} lr={lr:g}",
            evaluate=lambda: metrics.psnr(render(model, coords, image.shape), image),
        )  # fmt: skip
        name = arm.name if len(rates) == 1 else f"{arm.name}_lr{lr:g}"
        saved = io.save_image(config.out / f"{name}.png", render(model, coords, image.shape))
        reconstruction = torch.from_numpy(saved).reshape(image.shape) / 255  # exactly the PNG's pixels
        reconstructions[f"{name}.png"] = reconstruction
        return {
            "name": arm.name, "arch": arm.mlp.arch, "fr": arm.mlp.fr, "lr": lr, "steps": config.train.steps,
            "seconds": round(result.seconds, 3), "params": count_parameters(model),
            "psnr": metrics.psnr(reconstruction, target), "ssim": metrics.ssim(reconstruction, target),
            "lpips": metrics.lpips(reconstruction, target), "reconstruction": f"{name}.png", "curve": result.curve,
        }  # fmt: skip

    best, grid = sweep(arms(config.network, config.compare), rates, run_one, "psnr")
    payload = {"image": str(config.image or "skimage:astronaut"), "size": [height, width], "runs": best}
    if len(rates) > 1:
        payload["sweep"] = [{k: v for k, v in run.items() if k != "curve"} for run in grid]
    io.write_json(config.out / "metrics.json", payload)
    plots.curves(config.out / "psnr_curve.png", {r["name"]: r["curve"] for r in best}, "step", "PSNR (dB)")
    if config.compare:
        _plot_comparison(config.out / "compare.png", target, [(r, reconstructions[r["reconstruction"]]) for r in best])
    Console().print(io.markdown_table(best, ["name", "lr", "steps", "seconds", "params", "psnr", "ssim", "lpips"]))
    return payload


def _plot_comparison(path: Path, target: Tensor, runs: list[tuple[dict, Tensor]]) -> None:
    """Target, each run and its absolute error map (one colour scale: black 0, white ≥ 0.25) side by side."""
    squeeze = (lambda a: a[..., 0]) if target.shape[-1] == 1 else (lambda a: a)
    images, errors = [("target", squeeze(target.numpy()))], [("", None)]
    for run, reconstruction in runs:
        images.append((f"{run['name']}  {run['psnr']:.2f} dB", squeeze(reconstruction.numpy())))
        error = (reconstruction - target).abs().mean(-1).clamp(max=0.25) * 4
        errors.append((f"|error| {run['name']}", error.numpy()))
    plots.image_grid(path, [images, errors], cmap="gray")
