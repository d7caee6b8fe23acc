"""The object sphere: found from cameras that stand around an object and look at it, from no other capture; rays
start where they could first reach it, so training views lose the space in front of their lenses and a viewer
camera close to the object still sees it whole."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import yaml
from nerfstudio.cameras.cameras import Cameras, CameraType
from nerfstudio.data.dataparsers.blender_dataparser import BlenderDataParserConfig
from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig
from test_ngp_model import capture_model, rays

from frinr_core.errors import InputError
from frinr_nerfstudio.method.models.dvgo import DVGOModelConfig
from frinr_nerfstudio.method.models.ngp import NGPModelConfig
from frinr_nerfstudio.method.object_sphere import find_object_sphere, ray_starts, train_cameras
from frinr_nerfstudio.nerfstudio_fixes.datacheck import scene_dataparser

CAPTURES = Path(__file__).resolve().parents[3] / "shared" / "data" / "captures"
CENTRE = torch.tensor([0.2, -0.1, 0.3])


def looking_at(positions: torch.Tensor, target: torch.Tensor, fov_degrees: float = 18.6, **kwargs) -> Cameras:
    """Square perspective cameras at ``positions`` (n, 3), each looking at ``target`` (OpenGL: -z forward, +y up)."""
    forward = torch.nn.functional.normalize(target - positions, dim=-1)  # (n, 3)
    right = torch.nn.functional.normalize(torch.cross(forward, torch.tensor([0.0, 0.0, 1.0]).expand_as(forward), -1))
    up = torch.cross(right, forward, dim=-1)
    poses = torch.stack([right, up, -forward, positions], dim=-1)  # (n, 3, 4)
    focal = 50 / math.tan(math.radians(fov_degrees) / 2)  # 100 pixels wide
    return Cameras(camera_to_worlds=poses, fx=focal, fy=focal, cx=50.0, cy=50.0, width=100, height=100, **kwargs)


def ring(n: int = 24, distances: torch.Tensor | float = 1.0, arc_degrees: float = 360.0, elevation: float = 20.0):
    """Camera positions on an arc around CENTRE, ``elevation`` degrees above it."""
    azimuth = torch.deg2rad(torch.linspace(0, arc_degrees, n + 1)[:n] if arc_degrees == 360 else torch.linspace(
        0, arc_degrees, n))  # fmt: skip
    lift = math.radians(elevation)
    unit = torch.stack(
        [azimuth.cos() * math.cos(lift), azimuth.sin() * math.cos(lift), torch.full((n,), math.sin(lift))]
    )
    return CENTRE + unit.T * torch.as_tensor(distances).reshape(-1, 1)


def test_cameras_around_an_object_give_its_centre_and_what_the_widest_view_holds() -> None:
    distances = torch.linspace(0.9, 1.0, 24)
    sphere = find_object_sphere(looking_at(ring(distances=distances), CENTRE))
    assert sphere is not None
    torch.testing.assert_close(torch.tensor(sphere[:3]), CENTRE, atol=1e-5, rtol=0)
    assert sphere[3] == pytest.approx(1.0 * math.tan(math.radians(9.3)), rel=1e-5)  # the farthest camera's view
    half_orbit = find_object_sphere(looking_at(ring(n=12, arc_degrees=180.0), CENTRE, fov_degrees=60.0))
    assert half_orbit is not None and half_orbit[3] == pytest.approx(math.tan(math.radians(30)), rel=1e-5)


@pytest.mark.parametrize(
    "cameras",
    [
        pytest.param(lambda: looking_at(ring(n=12, arc_degrees=40.0), CENTRE), id="forward-facing-40-degrees"),
        pytest.param(lambda: looking_at(ring(), 2 * ring() - CENTRE), id="looking-outwards"),  # a room panorama
        pytest.param(
            lambda: looking_at(
                ring(n=8, arc_degrees=40.0), ring(n=8, arc_degrees=40.0) + torch.tensor([0.0, 1.0, 0.0])
            ),
            id="parallel-axes",
        ),
        pytest.param(lambda: looking_at(ring(n=1), CENTRE), id="one-camera"),
        pytest.param(lambda: looking_at(ring(), CENTRE, camera_type=CameraType.FISHEYE), id="fisheye"),
    ],
)
def test_no_sphere_for_cameras_that_do_not_surround_an_object(cameras) -> None:
    assert find_object_sphere(cameras()) is None


def test_rays_start_where_they_could_first_reach_the_sphere_and_never_before_the_near_plane() -> None:
    origins = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 3.0], [0.05, 0.0, 0.0]])  # the last inside the sphere
    starts = ray_starts(origins, (0.0, 0.0, 0.0, 0.25), near_plane=0.05)
    torch.testing.assert_close(starts, torch.tensor([[0.75], [2.75], [0.05]]))


def nearest_sample(model, bundle) -> float:
    """The smallest distance along its ray of any sample the model's sampler lays."""
    march, seen = model.sampler.forward, []

    def recorded(*args, **kwargs):
        samples, ray_indices = march(*args, **kwargs)
        seen.append(samples.frustums.starts[:, 0])
        return samples, ray_indices

    model.sampler.forward = recorded
    model(bundle)
    return float(torch.cat(seen).min())


@pytest.mark.parametrize("training", [False, True], ids=["eval", "train"])
def test_no_sample_lies_before_its_rays_start(training: bool) -> None:
    """Cameras in the grid, 1 from the centre, with a sphere of radius 0.3: nothing nearer than 0.7 (without the
    sphere, samples right in front of the lens); a camera inside the sphere (a viewer zoomed in) marches from the
    near plane."""
    sphere, jitter = {"object_sphere": (0.0, 0.0, 0.0, 0.3)}, 0.05  # training shifts each ray's steps by < a step
    nearest = nearest_sample(capture_model(**sphere).train(training), rays(256, radius=1.0))
    assert 0.7 - 1e-6 <= nearest <= 0.7 + (jitter if training else 1e-6)
    assert nearest_sample(capture_model().train(training), rays(256, radius=1.0)) < 0.6  # auto, no scene: off
    inside = nearest_sample(capture_model(**sphere).train(training), rays(256, radius=0.1))
    assert 0.05 - 1e-6 <= inside <= 0.05 + (jitter if training else 1e-6)


def test_the_sphere_under_autocast_trains_with_finite_gradients() -> None:
    """On CUDA nerfstudio trains under float16 autocast; the CPU's bfloat16 reproduces the mixed dtypes."""
    torch.manual_seed(0)
    model = capture_model(object_sphere=(0.0, 0.0, 0.0, 0.3)).train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outputs = model(rays(64, radius=1.0))
        loss = model.get_loss_dict(outputs, {"image": torch.full((64, 3), 0.5)})["rgb_loss"]
    loss.backward()
    grads = [p.grad for p in model.field.parameters() if p.grad is not None]
    assert torch.isfinite(loss) and grads and all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("sphere", [(0.0, 0.0, 0.0, 0.0), (0.0, float("nan"), 0.0, 0.2), (0.0, 0.0, 0.0, -1.0)])
def test_an_impossible_sphere_is_one_line(sphere: tuple) -> None:
    with pytest.raises(InputError, match="object_sphere needs a finite centre"):
        capture_model(object_sphere=sphere)


def test_settled_from_the_datamanagers_data_recorded_and_explicit_choices_stay(tiny_capture: Path) -> None:
    """ns-train --data sets the datamanager's path, not the dataparser's: the sphere comes from the scene it names.
    The tiny scene's cameras orbit its object; blender-data's scene box bounds its rays, so no sphere there."""
    from nerfstudio.data.datamanagers.base_datamanager import VanillaDataManagerConfig

    datamanager = VanillaDataManagerConfig(dataparser=NerfstudioDataParserConfig(), data=tiny_capture)
    for config in (NGPModelConfig(), DVGOModelConfig()):
        config.settle(scene_dataparser(datamanager), "cpu")
        assert isinstance(config.object_sphere, tuple) and config.object_sphere[3] > 0
        blender = type(config)()
        blender.settle(BlenderDataParserConfig(data=tiny_capture), "cpu")
        assert blender.object_sphere == "off"
    explicit = NGPModelConfig(object_sphere="off")
    explicit.settle(scene_dataparser(datamanager), "cpu")
    recorded = NGPModelConfig()
    recorded.settle(scene_dataparser(datamanager), "cpu")
    resumed = NGPModelConfig()
    resumed.adopt(recorded)  # a resumed run takes the recorded sphere
    assert explicit.object_sphere == "off" and resumed.object_sphere == recorded.object_sphere


def test_a_run_recorded_before_the_sphere_loads_as_it_was_trained(tiny_capture: Path) -> None:
    """config.yml of a run from before the object sphere has no entry for it: ns-eval and the viewer must render that
    run from the near plane, as it was trained, not find a sphere for it now; a recorded entry loads as written."""
    recorded = yaml.dump(NGPModelConfig())
    before = "\n".join(line for line in recorded.splitlines() if not line.startswith("object_sphere:"))
    assert before != recorded
    old = yaml.load(before, Loader=yaml.Loader)
    old.settle(NerfstudioDataParserConfig(data=tiny_capture), "cpu")
    assert old.object_sphere == "off"
    assert yaml.load(recorded, Loader=yaml.Loader).object_sphere == "auto"


def test_a_missing_scene_fails_in_one_line_when_the_sphere_is_looked_for(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        NGPModelConfig().settle(NerfstudioDataParserConfig(data=tmp_path / "nowhere"), "cpu")


@pytest.mark.skipif(not CAPTURES.is_dir(), reason="needs ../shared/data/captures")
def test_the_shared_captures_maryrose_surrounds_an_object_office_does_not() -> None:
    """maryrose's 360-degree turntable: its training rays start 0.74-0.85 from their cameras, where its tankard
    begins (the near planes measured best, BENCHMARKS.md); office, a hand-held walk through a room, gets no sphere
    (a near plane of 0.65 cost it 0.4 dB)."""
    spheres = {}
    for scene in ("maryrose", "office"):
        config = NGPModelConfig()
        config.settle(NerfstudioDataParserConfig(data=CAPTURES / scene), "cpu")
        spheres[scene] = config.object_sphere
    assert spheres["office"] == "off" and isinstance(spheres["maryrose"], tuple)
    cameras = train_cameras(NerfstudioDataParserConfig(data=CAPTURES / "maryrose"))
    starts = ray_starts(cameras.camera_to_worlds[:, :, 3], spheres["maryrose"], near_plane=0.05)  # (n, 1)
    assert 0.7 < float(starts.min()) < 0.78 and float(starts.max()) < 0.9
