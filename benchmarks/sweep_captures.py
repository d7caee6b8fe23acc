"""Real captures: which of nerfstudio's aids for captures help frinr-ngp, and the sampler's alpha rule and step growth.

Every variant is a set of model settings (dotted paths from ``NGPModelConfig``) and states all of them, so it does
not depend on the defaults. Each run is ``frinr_nerfstudio.tools.budgeted`` in its own process at a step budget (not
shifted by machine load), evaluated on the same evenly spaced test views; finished runs in ``--out`` are reused.

    .venv/bin/python -m benchmarks.sweep_captures --scenes maryrose office --steps 250 --jobs 2
    .venv/bin/python -m benchmarks.sweep_captures --report        # tabulate what has run so far
    .venv/bin/python -m benchmarks.sweep_captures --variants learned-background learned-bg+cone-0.02 \
        --steps 200 --section captures-cone --title "step growth"   # a table of its own, beside the first
"""

from __future__ import annotations

import argparse
from pathlib import Path

from benchmarks.nerf import DATA, apply, run_in_pool
from benchmarks.report import publish

PLAIN = {
    "alpha_thre_cap": False,
    "background_color": "white",
    "field.appearance_embedding_dim": 0,
    "camera_optimizer.mode": "off",
    "distortion_loss_mult": 0.0,
    "cone_angle": 0.004,
    "use_gradient_scaling": False,
    "near_plane": 0.05,
    "object_sphere": "off",
    "far_plane": 1e3,
}
DEFAULTS = PLAIN | {"background_color": "learned", "cone_angle": 0.02}
"""frinr-ngp's settings on a capture from *captures-cone* until the object sphere (which ``defaults+object-sphere``
adds: frinr-ngp's settings on a capture since)."""
ALL = PLAIN | {"background_color": "learned", "field.appearance_embedding_dim": 32, "camera_optimizer.mode": "SO3xR3"}
VARIANTS: dict[str, dict] = {
    "plain": PLAIN,
    "nerfacc-alpha-cap": PLAIN | {"alpha_thre_cap": True},
    "learned-background": PLAIN | {"background_color": "learned"},
    "appearance-embedding": PLAIN | {"field.appearance_embedding_dim": 32},
    "camera-optimizer": PLAIN | {"camera_optimizer.mode": "SO3xR3"},
    "all-three": ALL,
    "learned-bg+distortion-0.002": PLAIN | {"background_color": "learned", "distortion_loss_mult": 0.002},
    "learned-bg+distortion-0.01": PLAIN | {"background_color": "learned", "distortion_loss_mult": 0.01},
    **{
        f"learned-bg+cone-{cone}": PLAIN | {"background_color": "learned", "cone_angle": cone}
        for cone in (0.01, 0.02, 0.04)
    },
    "defaults": DEFAULTS,
    "defaults+camera-optimizer": DEFAULTS | {"camera_optimizer.mode": "SO3xR3"},
    "defaults+cone-0.04": DEFAULTS | {"cone_angle": 0.04},
    "defaults+distortion-0.002": DEFAULTS | {"distortion_loss_mult": 0.002},
    "defaults+gradient-scaling": DEFAULTS | {"use_gradient_scaling": True},
    **{f"defaults+near-{near}": DEFAULTS | {"near_plane": near} for near in (0.65, 0.75, 0.85)},
    "defaults+object-sphere": DEFAULTS | {"object_sphere": "auto"},
    "defaults+far-1.4": DEFAULTS | {"far_plane": 1.4},
    "defaults+appearance-embedding": DEFAULTS | {"field.appearance_embedding_dim": 32},
    "defaults+appearance+near-0.65": DEFAULTS | {"field.appearance_embedding_dim": 32, "near_plane": 0.65},
}
"""frinr-ngp's model settings per variant."""
COLUMNS = ("psnr", "ssim", "train_samples_per_ray", "train_rays_per_second", "render_seconds_per_view")


def run_one(job: tuple[str, str, int, int, int, Path]) -> dict:
    """Train and evaluate one variant on one scene in this (fresh) process."""
    variant, scene, seed, steps, views, out = job
    from frinr_nerfstudio.tools.budgeted import BudgetRun, execute

    run = BudgetRun(method="frinr-ngp", data=DATA / "captures" / scene, out=out, dataparser="nerfstudio-data",
                    steps=steps, seed=seed, eval_views=views)  # fmt: skip
    result = execute(run, lambda config: apply(config.pipeline.model, VARIANTS[variant]))
    result = {"variant": variant, "scene": scene, "seed": seed} | {k: result[k] for k in COLUMNS}
    print(f"{scene}, {variant}: {result['psnr']:.2f} dB", flush=True)
    return result


def table(results: list[dict]) -> str:
    """One row per scene and variant; with several seeds, PSNR per seed and the mean, the other columns' means."""
    rows = ["| scene | variant | test PSNR | SSIM | samples/ray | train rays/s | render s/view |", "|---" * 7 + "|"]
    cells: dict[tuple[str, str], list[dict]] = {}
    for r in sorted(results, key=lambda r: (r["scene"], list(VARIANTS).index(r["variant"]), r["seed"])):
        cells.setdefault((r["scene"], r["variant"]), []).append(r)
    for (scene, variant), runs in cells.items():
        mean = {k: sum(r[k] for r in runs) / len(runs) for k in COLUMNS}
        psnr = f"{mean['psnr']:.2f}"
        if len(runs) > 1:
            psnr = " / ".join(f"{r['psnr']:.2f}" for r in runs) + f" (mean {psnr})"
        rows.append(
            f"| {scene} | {variant} | {psnr} | {mean['ssim']:.3f} | {mean['train_samples_per_ray']:.1f} | "
            f"{mean['train_rays_per_second']:.0f} | {mean['render_seconds_per_view']:.2f} |"
        )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scenes", nargs="+", default=["maryrose", "office"])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--steps", type=int, default=250)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42])
    parser.add_argument("--eval-views", type=int, default=4)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("outputs/sweep_captures"))
    parser.add_argument("--report", action="store_true", help="train nothing: tabulate the finished runs in --out")
    parser.add_argument("--no-write", action="store_true", help="print the table, leave BENCHMARKS.md alone")
    parser.add_argument("--section", default="captures-sweep", help="BENCHMARKS.md section to write")
    parser.add_argument("--title", default="sampler and capture aids", help="what the section's table compares")
    args = parser.parse_args()
    jobs = [(v, scene, seed, args.steps, args.eval_views, args.out / f"steps{args.steps}" / scene / v / f"seed{seed}")
            for scene in args.scenes for v in args.variants for seed in args.seeds]  # fmt: skip
    results = run_in_pool(run_one, jobs, args.jobs, report_only=args.report)
    seeds = ", ".join(map(str, args.seeds))
    body = (
        f"{table(results)}\n\nfrinr-ngp (FR) on the shared captures (nerfstudio-data, contraction on), "
        f"{args.steps} steps, seeds {seeds}, test PSNR/SSIM on {args.eval_views} evenly spaced test views. "
        "Each variant states all four settings: nerfacc's cap of the alpha threshold at the mean occupancy, a learned"
        " background (colour per direction beyond the grid) instead of white, a 32-wide per-image appearance "
        "embedding, nerfstudio's camera optimizer (SO3xR3); the distortion variants add Mip-NeRF 360's distortion "
        "loss at the weight named (nerfacto's is 0.002) to the learned background; the cone variants set the step "
        "growth with distance (dt = t * cone angle; 0.004 in the others, instant-ngp's); 'defaults' is the learned "
        "background at cone angle 0.02 (frinr-ngp's defaults on a capture until the object sphere), and each "
        "'defaults+…' changes the settings it names; gradient-scaling scales each sample's gradients by its squared "
        "distance from the camera, capped at 1 (nerfacto's use_gradient_scaling); near-N starts the rays N from the "
        "camera (0.05 in the others) and far-N ends them there (1000 in the others); object-sphere starts each ray "
        "where it could first reach the sphere its cameras surround (found from the poses; off in the others). "
        f"Runs were {args.jobs} one-thread jobs at a time, so train rays/s and render s/view compare variants "
        "with each other, not with solo runs."
    )
    title = f"frinr-ngp on real captures: {args.title} ({args.steps} steps)"
    publish(args.section, title, body, dry_run=args.no_write)


if __name__ == "__main__":
    main()
