"""`frinr fit2d`: fit an image with a coordinate MLP — the paper's 2D experiment.

Flow: load target → build baseline and/or FR network from one builder → train (full image or pixel
batches) → reconstruction PNGs, metrics.json, learning curves and a side-by-side comparison.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from frinr_core import io, metrics, plots, runner
from frinr_core.errors import InputError
from frinr_core.mlp import MLPConfig, build_mlp
from frinr_core.runner import Network, RunConfig, Trained
from frinr_core.train import Arm, Bar, TrainOptions, fit


@dataclass
class Fit2dConfig(RunConfig):
    """Fit an image with a ReLU, ReLU+PE or SIREN network, with or without FR (--compare: both)."""

    image: Path | None = None
    """PNG/JPEG/TIFF to fit (grayscale, RGB or RGBA composited on white; 8/16-bit). Default: astronaut."""
    size: int | None = None
    """Resize so the long side has this many pixels (default: keep)."""
    batch: int | None = None
    """Random pixels per step (default: the whole image, as the paper)."""
    out: Path = Path("outputs/fit2d")
    network: Network = field(default_factory=lambda: MLPConfig(fr=True))


def pixel_grid(height: int, width: int) -> Tensor:
    """Pixel centres as (H·W, 2) coordinates in [-1, 1]², row-major like the image."""
    ys, xs = torch.linspace(-1, 1, height), torch.linspace(-1, 1, width)
    return torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=-1).reshape(-1, 2)


def render(model: torch.nn.Module, coords: Tensor, shape: tuple[int, ...], chunk: int = 1 << 16) -> Tensor:
    with torch.no_grad():
        return torch.cat([model(part) for part in coords.split(chunk)]).reshape(shape)


class Fit2d(runner.Task):
    metric = "psnr"
    difference = "{:+.2f} dB PSNR"
    default_lr = 1e-3
    columns = ["psnr", "ssim", "lpips"]

    def __init__(self, config: Fit2dConfig) -> None:
        super().__init__(config)
        self.image = io.load_image(config.image, config.size)  # (H, W, C)
        self.coords, self.pixels = pixel_grid(*self.image.shape[:2]), self.image.reshape(-1, self.image.shape[-1])
        if config.batch is not None and config.batch < 1:
            raise InputError(f"--batch must be a positive number of pixels, got {config.batch}")
        self.reconstructions: dict[str, Tensor] = {}  # file name -> the saved pixels, for the comparison figure

    def write_target(self) -> dict:
        saved = io.save_image(self.config.out / "target.png", self.image)
        self.target = torch.from_numpy(saved).reshape(self.image.shape) / 255  # exactly the PNG's pixels
        return {"image": str(self.config.image or "skimage:astronaut"), "size": list(self.image.shape[:2])}

    def batch(self, generator: torch.Generator) -> tuple[Tensor, Tensor]:
        if self.config.batch is None or self.config.batch >= len(self.coords):
            return self.coords, self.pixels
        index = torch.randint(len(self.coords), (self.config.batch,), generator=generator)
        return self.coords[index], self.pixels[index]

    def train(self, arm: Arm, options: TrainOptions, lr: float, bar: Bar | None = None) -> Trained:
        torch.manual_seed(options.seed)
        model = build_mlp(2, self.image.shape[-1], arm.mlp, samples=min(self.image.shape[:2]))
        result = fit(
            model, self.batch, options=options, lr=lr, description=f"{arm.name} lr={lr:g}", bar=bar,
            evaluate=None if bar else lambda: self.score(model),
        )  # fmt: skip
        return Trained(model, result)

    def score(self, model: torch.nn.Module) -> float:
        return metrics.psnr(render(model, self.coords, self.image.shape), self.image)

    def measure(self, trained: Trained, name: str) -> dict:
        saved = io.save_image(self.config.out / f"{name}.png", render(trained.model, self.coords, self.image.shape))
        reconstruction = torch.from_numpy(saved).reshape(self.image.shape) / 255  # exactly the PNG's pixels
        self.reconstructions[f"{name}.png"] = reconstruction
        return {
            "psnr": metrics.psnr(reconstruction, self.target), "ssim": metrics.ssim(reconstruction, self.target),
            "lpips": metrics.lpips(reconstruction, self.target), "reconstruction": f"{name}.png",
        }  # fmt: skip

    def plot(self, runs: list[dict]) -> None:
        plots.curves(self.config.out / "psnr_curve.png", {r["name"]: r["curve"] for r in runs}, "step", "PSNR (dB)")
        if self.config.compare:
            reconstructions = [(r, self.reconstructions[r["reconstruction"]]) for r in runs]
            _plot_comparison(self.config.out / "compare.png", self.target, reconstructions)


def run(config: Fit2dConfig) -> dict:
    return runner.run(Fit2d(config))


def _plot_comparison(path: Path, target: Tensor, runs: list[tuple[dict, Tensor]]) -> None:
    """Target, each run and its absolute error map (one colour scale: black 0, white ≥ 0.25) side by side."""
    squeeze = (lambda a: a[..., 0]) if target.shape[-1] == 1 else (lambda a: a)
    images, errors = [("target", squeeze(target.numpy()))], [("", None)]
    for run_, reconstruction in runs:
        images.append((f"{run_['name']}  {run_['psnr']:.2f} dB", squeeze(reconstruction.numpy())))
        error = (reconstruction - target).abs().mean(-1).clamp(max=0.25) * 4
        errors.append((f"|error| {run_['name']}", error.numpy()))
    plots.image_grid(path, [images, errors], cmap="gray")
