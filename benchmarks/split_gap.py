"""Test PSNR against training PSNR of a finished run: does the field generalise between views, or only reproduce the
views it was shown? Renders every test view and every ``--train-stride``-th training view at ``--scale`` of their
resolution (the ground truth area-downsampled to match) and prints each view's PSNR.

    .venv/bin/python -m benchmarks.split_gap outputs/captures/maryrose/seed42/frinr-ngp/run --scale 0.25
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch.nn.functional import interpolate
from torchmetrics.functional.image import peak_signal_noise_ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("run", type=Path, help="a run directory holding config.yml (searched recursively)")
    parser.add_argument("--scale", type=float, default=0.25, help="render at this fraction of each view's resolution")
    parser.add_argument("--train-stride", type=int, default=8, help="every n-th training view")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from nerfstudio.utils.eval_utils import eval_setup

    _, pipeline, _, _ = eval_setup(next(args.run.rglob("config.yml")), test_mode="test")
    datamanager = pipeline.datamanager
    for split, dataset, stride in (("test", datamanager.eval_dataset, 1), ("train", datamanager.train_dataset, 0)):
        names = dataset._dataparser_outputs.image_filenames
        scores = []
        for index in range(0, len(names), stride or args.train_stride):
            camera = dataset.cameras[index : index + 1]
            camera.rescale_output_resolution(args.scale)
            with torch.no_grad():
                rgb = pipeline.model.get_outputs_for_camera(camera)["rgb"]  # (h, w, 3)
            image = dataset.get_image_float32(index)[..., :3].permute(2, 0, 1)[None]  # (1, 3, H, W)
            truth = interpolate(image, size=rgb.shape[:2], mode="area")[0].permute(1, 2, 0)
            scores.append(peak_signal_noise_ratio(rgb.clamp(0, 1), truth, data_range=1.0).item())
            print(f"{split} {Path(names[index]).name}: {scores[-1]:.2f} dB", flush=True)
        print(f"{split}: {min(scores):.2f}–{max(scores):.2f} dB over {len(scores)} views")


if __name__ == "__main__":
    main()
