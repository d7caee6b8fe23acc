"""frinr-ngp's model and field: one training step on CPU, and the FR weight cache within that step."""

from __future__ import annotations

import pytest
import torch
from nerfstudio.cameras.rays import RayBundle
from nerfstudio.data.scene_box import SceneBox
from nerfstudio.engine.callbacks import TrainingCallbackLocation

from frinr_core.errors import InputError
from frinr_core.fourier import FourierLinear
from frinr_nerfstudio.method.fields.ngp import NGPFieldConfig
from frinr_nerfstudio.method.heads import HeadConfig
from frinr_nerfstudio.method.models.base import CONTRACTED_CONE_ANGLE
from frinr_nerfstudio.method.models.ngp import NGPModel, NGPModelConfig
from frinr_nerfstudio.method.samplers import TorchOccGrid, visible


def small_model(fr: bool = True) -> NGPModel:
    """A small hash grid and occupancy grid; FR in both heads so that every field call goes through FR."""
    field = NGPFieldConfig(
        num_levels=4, log2_hashmap_size=12, max_res=64,
        density_head=HeadConfig(hidden_layers=1, fr=fr), colour_head=HeadConfig(hidden_layers=1, fr=fr),
    )  # fmt: skip
    config = NGPModelConfig(field=field, grid_resolution=16, grid_levels=2, render_step_size=0.05, contraction="on")
    return config.setup(scene_box=SceneBox(torch.tensor([[-1.5] * 3, [1.5] * 3])), num_train_data=1)


def rays(n: int = 256, radius: float = 4.0) -> RayBundle:
    """``n`` rays from cameras ``radius`` from the centre, looking roughly at it."""
    gen = torch.Generator().manual_seed(0)
    origins = torch.nn.functional.normalize(torch.randn(n, 3, generator=gen), dim=-1) * radius
    directions = torch.nn.functional.normalize(torch.rand(n, 3, generator=gen) - 0.5 - origins / radius, dim=-1)
    return RayBundle(
        origins=origins, directions=directions, pixel_area=torch.full((n, 1), 1e-4),
        camera_indices=torch.zeros(n, 1, dtype=torch.long),
    )  # fmt: skip


def run_callbacks(model: NGPModel, step: int) -> None:
    for callback in model.get_training_callbacks(None):  # type: ignore[arg-type]
        callback.run_callback_at_location(step, TrainingCallbackLocation.BEFORE_TRAIN_ITERATION)


def test_cpu_model_uses_torch_grid_and_trains() -> None:
    torch.manual_seed(0)
    model = small_model().train()
    assert isinstance(model.occupancy_grid, TorchOccGrid)
    optimizer = torch.optim.Adam(model.get_param_groups()["fields"], lr=1e-2)
    batch = {"image": torch.full((64, 3), 0.25)}
    losses = []
    for step in range(5):
        run_callbacks(model, step)
        outputs = model(rays(64))
        loss = model.get_loss_dict(outputs, batch)["rgb_loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert outputs["rgb"].shape == (64, 3) and outputs["depth"].shape == (64, 1)
    assert model.get_metrics_dict(outputs, batch)["num_samples_per_batch"] == outputs["num_samples_per_ray"].sum()
    assert losses[-1] < losses[0]


def test_fr_weight_is_computed_once_per_step() -> None:
    """Grid refresh, the sampler's density pass and the training pass all reuse one W = coeffs @ bases per
    FR layer; the optimizer step (and only it) makes a new one."""
    torch.manual_seed(0)
    model = small_model().train()
    layers = [m for m in model.field.modules() if isinstance(m, FourierLinear)]
    assert len(layers) == 2
    optimizer = torch.optim.Adam(model.get_param_groups()["fields"], lr=1e-2)
    products = []
    original = FourierLinear.weight.fget

    def counting_weight(layer: FourierLinear) -> torch.Tensor:
        before = layer._cache
        weight = original(layer)
        if before is None or before[-1] is not weight:
            products.append(layer)
        return weight

    FourierLinear.weight = property(counting_weight)
    try:
        for step in range(3):
            products.clear()
            run_callbacks(model, step * model.config.grid_update_every)  # refreshes the grid every time
            outputs = model(rays(64))
            outputs["rgb"].sum().backward()
            assert sorted(map(id, products)) == sorted(map(id, layers))  # one product per layer this step
            optimizer.step()
    finally:
        FourierLinear.weight = property(original)


def test_baseline_field_has_no_fr_layers() -> None:
    model = small_model(fr=False)
    assert not any(isinstance(m, FourierLinear) for m in model.modules())


def test_checkpoint_of_other_fr_layers_is_refused_not_loaded_loosely() -> None:
    """nerfstudio's pipeline retries a failed load with strict=False; the FR layers must not stay at random init."""
    fr, baseline = small_model(fr=True), small_model(fr=False)
    fr.load_state_dict(small_model(fr=True).state_dict())  # same settings: loads
    for strict in (True, False):
        with pytest.raises(InputError, match=r"checkpoint does not fit this NGPModel.*missing \['field\.colour_head"):
            fr.load_state_dict(baseline.state_dict(), strict=strict)


def test_contraction_keeps_the_box_and_squeezes_the_outside() -> None:
    """Bounded scenes keep the scene box undistorted; unbounded captures' far points still reach the grid."""
    aabb = torch.tensor([[-1.5] * 3, [1.5] * 3])
    points = torch.tensor([[0.0, 0.0, 0.0], [1.2, -0.3, 0.6], [30.0, 0.0, -4.0]])
    contracted = NGPFieldConfig().setup(aabb=aabb, contract=True)
    plain = NGPFieldConfig().setup(aabb=aabb, contract=False)
    unit, inside = contracted.unit_positions(points)
    assert inside.all()
    torch.testing.assert_close(unit[:2], (points[:2] / 1.5 + 2) / 4)  # identity inside the box
    assert (unit[2] > 0).all() and (unit[2] < 1).all()
    unit, inside = plain.unit_positions(points)
    torch.testing.assert_close(unit[:2], (points[:2] / 1.5 + 1) / 2)
    assert inside[:, 0].tolist() == [True, True, False]


def capture_model(**settings) -> NGPModel:
    """The small model with the features for real captures switched as given."""
    field = NGPFieldConfig(
        num_levels=4, log2_hashmap_size=12, max_res=64, appearance_embedding_dim=settings.pop("app", 0)
    )
    settings = {"contraction": "on", "render_step_size": 0.05} | settings
    config = NGPModelConfig(field=field, grid_resolution=16, grid_levels=2, **settings)
    return config.setup(scene_box=SceneBox(torch.tensor([[-1.5] * 3, [1.5] * 3])), num_train_data=4)


def test_learned_background_is_what_empty_rays_see_and_it_trains() -> None:
    torch.manual_seed(0)
    model = capture_model(background_color="learned").train()
    model.occupancy_grid.binaries.fill_(False)  # nothing in the grid: every ray sees only the background
    bundle = rays(32)
    outputs = model(bundle)
    torch.testing.assert_close(outputs["rgb"], model.background(bundle.directions))
    assert outputs["rgb"].std(dim=0).sum() > 0  # a colour per direction, not one colour
    (outputs["rgb"] - 0.8).pow(2).mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.background.parameters())
    assert set(map(id, model.background.parameters())) <= set(map(id, model.get_param_groups()["fields"]))
    with torch.no_grad():  # a view of empty space (the viewer turned away from the scene) renders too
        seen = model.eval()(bundle)
    torch.testing.assert_close(seen["rgb"], model.background(bundle.directions))


def test_background_auto_is_learned_on_captures_white_on_blender_and_explicit_choices_stay() -> None:
    from nerfstudio.data.dataparsers.blender_dataparser import BlenderDataParserConfig
    from nerfstudio.data.dataparsers.instant_ngp_dataparser import InstantNGPDataParserConfig
    from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig

    from frinr_nerfstudio.method.models.dvgo import DVGOModelConfig

    expected = {BlenderDataParserConfig: "white", NerfstudioDataParserConfig: "learned",
                InstantNGPDataParserConfig: "learned"}  # fmt: skip
    for parser, colour in expected.items():  # the parsers without files: no object sphere to look for
        config = NGPModelConfig(object_sphere="off")
        config.settle(parser(), "cpu")
        assert config.background_color == colour
        explicit = NGPModelConfig(background_color="black", object_sphere="off")
        explicit.settle(parser(), "cpu")
        assert explicit.background_color == "black"
    assert DVGOModelConfig().background_color == "white"  # measured for frinr-ngp only
    unsettled = capture_model()  # a model built without a dataparser: white, no background field
    assert unsettled.config.background_color == "auto" and unsettled.background is None
    assert unsettled.renderer_rgb.background_color == "white"


def test_appearance_embedding_per_training_image_and_mean_for_other_views() -> None:
    torch.manual_seed(0)
    model = capture_model(app=8).train()
    with torch.no_grad():
        model.field.appearance.embedding.weight.normal_()
    bundle = rays(16)
    colours = []
    for camera in (0, 1):
        bundle.camera_indices = torch.full((16, 1), camera)
        colours.append(model(bundle)["rgb"])
    assert not torch.allclose(colours[0], colours[1])  # each image its own appearance
    model.eval()
    with torch.no_grad():
        bundle.camera_indices = torch.full((16, 1), 3)
        seen = model(bundle)["rgb"]
        bundle.camera_indices = torch.full((16, 1), 0)
        torch.testing.assert_close(model(bundle)["rgb"], seen)  # outside training: the mean, whatever the index


def test_camera_optimizer_refines_poses_in_its_own_group() -> None:
    from nerfstudio.cameras.camera_optimizers import CameraOptimizerConfig

    torch.manual_seed(0)
    model = capture_model(camera_optimizer=CameraOptimizerConfig(mode="SO3xR3")).train()
    groups = model.get_param_groups()
    assert set(groups) == {"fields", "camera_opt"}
    with torch.no_grad():
        model.camera_optimizer.pose_adjustment.normal_(std=0.05)
    bundle = rays(16)
    before = bundle.origins.clone()
    outputs = model(bundle)
    assert not torch.allclose(bundle.origins, before)  # training rays come from the refined poses
    losses = model.get_loss_dict(outputs, {"image": torch.full((16, 3), 0.5)})
    assert "camera_opt_regularizer" in losses
    losses["rgb_loss"].backward()  # the photometric loss alone reaches the poses, through the marched samples
    assert groups["camera_opt"][0].grad[0].abs().sum() > 0


def test_alpha_thre_cap_is_nerfaccs_rule() -> None:
    model = small_model()
    model.occupancy_grid.occs.fill_(0.002)
    assert model.alpha_threshold() == model.config.alpha_thre == 0.01
    model.config.alpha_thre_cap = True
    assert model.alpha_threshold() == pytest.approx(0.002)


def test_cone_angle_grows_steps_faster_with_contraction_and_an_explicit_one_wins() -> None:
    assert capture_model().cone_angle() == CONTRACTED_CONE_ANGLE > 0.004
    assert capture_model(contraction="off").cone_angle() == 0.004  # a bounded scene: nerfstudio's instant-ngp
    assert capture_model(cone_angle=0.0).cone_angle() == 0.0
    for impossible in ({"cone_angle": -0.01}, {"render_step_size": 0.0}, {"render_step_size": float("nan")}):
        with pytest.raises(InputError, match="render step > 0 and a cone angle >= 0"):
            capture_model(**impossible)


def test_distortion_loss_is_off_by_default_and_trains_the_density_when_on() -> None:
    torch.manual_seed(0)
    batch = {"image": torch.full((64, 3), 0.5)}
    default = small_model().train()
    assert "distortion_loss" not in default.get_loss_dict(default(rays(64)), batch)
    model = capture_model(distortion_loss_mult=0.01).train()
    losses = model.get_loss_dict(model(rays(64)), batch)
    assert losses["distortion_loss"] > 0
    losses["distortion_loss"].backward()
    grads = [p.grad for p in model.field.parameters() if p.grad is not None]
    assert grads and sum(g.abs().sum() for g in grads) > 0
    model.eval()
    assert "distortion" not in model(rays(64))  # a training term only


@pytest.mark.parametrize("weight", [-0.01, float("nan")])
def test_a_distortion_weight_below_zero_or_nan_is_one_line(weight: float) -> None:
    with pytest.raises(InputError, match="distortion_loss_mult must be a weight >= 0"):
        capture_model(distortion_loss_mult=weight)


def test_no_sample_lies_closer_to_its_camera_than_the_near_plane() -> None:
    """Cameras inside the grid, so the march has candidates right in front of them."""
    bundle = rays(256, radius=1.0)
    nearest = {}
    for near in (0.05, 0.65):
        model = capture_model(near_plane=near).eval()
        march = model.sampler.forward

        def recorded(*args, march=march, near=near, **kwargs):
            samples, ray_indices = march(*args, **kwargs)
            nearest[near] = float(samples.frustums.starts.min())
            return samples, ray_indices

        model.sampler.forward = recorded
        model(bundle)
    assert nearest[0.05] < 0.6 and nearest[0.65] == pytest.approx(0.65)  # float32 starts


@pytest.mark.parametrize(
    "planes", [{"near_plane": -0.1}, {"near_plane": 2.0, "far_plane": 1.0}, {"near_plane": float("nan")}]
)
def test_impossible_near_and_far_planes_are_one_line(planes: dict) -> None:
    with pytest.raises(InputError, match="0 <= near_plane < far_plane"):
        capture_model(**planes)


def test_distortion_loss_under_autocast_is_float32_and_its_gradients_finite() -> None:
    """On CUDA nerfstudio computes the losses under float16 autocast; the CPU's bfloat16 reproduces the mixed dtypes."""
    torch.manual_seed(0)
    model = capture_model(distortion_loss_mult=0.01).train()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = model.get_loss_dict(model(rays(64)), {"image": torch.full((64, 3), 0.5)})["distortion_loss"]
    assert loss.dtype == torch.float32 and torch.isfinite(loss) and loss > 0
    loss.backward()
    grads = [p.grad for p in model.field.parameters() if p.grad is not None]
    assert grads and all(torch.isfinite(g).all() for g in grads)


@pytest.mark.parametrize("one_pass", [False, True], ids=["cpu-rounds", "gpu-one-pass"])
def test_eval_evaluates_each_density_once_and_renders_what_two_passes_render(monkeypatch, one_pass: bool) -> None:
    """Outside training the visibility test's densities and colour features are the rendering's: the field sees
    each candidate sample at most once, and the view is the one a test pass followed by a second density pass over
    the kept samples renders (a GPU's training order) — with the CPU's front-to-back rounds and with the one pass
    over every candidate that a GPU takes."""
    torch.manual_seed(0)
    model = small_model().eval()
    monkeypatch.setattr(model, "visibility_in_one_pass", lambda device: one_pass)  # one_pass: what a GPU does
    bundle = rays(128)
    evaluated = []
    density_and_geo = model.field.density_and_geo

    def opaque_ball_in_haze(x: torch.Tensor, lookups=None) -> tuple[torch.Tensor, torch.Tensor]:
        """The field's own densities, made opaque inside the unit ball and nearly transparent outside it, so
        that rays both terminate early and pass samples the alpha threshold drops."""
        evaluated.append(x.clone())
        density, geo = density_and_geo(x, lookups)
        return density * torch.where(x.norm(dim=-1, keepdim=True) < 1.0, 100.0, 1e-4), geo

    monkeypatch.setattr(model.field, "density_and_geo", opaque_ball_in_haze)
    with torch.no_grad():
        once = model(bundle)
        march = {"render_step_size": model.render_step_size(), "cone_angle": model.cone_angle(),
                 "near_plane": model.config.near_plane, "far_plane": model.config.far_plane}  # fmt: skip
        candidates = model.occupancy_grid.sampling(bundle.origins, bundle.directions, **march)[0].numel()
    assert 0 < once["num_samples_per_ray"].sum() < candidates  # some candidates are dropped
    seen = torch.cat(evaluated)  # (E, 3) every position the field saw: each candidate's, at most once
    assert len(seen) <= candidates and len(torch.unique(seen, dim=0)) == len(seen)

    def test_then_evaluate_again(ray_samples, ray_indices, num_rays, record):
        starts, ends = ray_samples.frustums.starts[:, 0], ray_samples.frustums.ends[:, 0]
        sigmas = model.field.get_density(ray_samples)[0][:, 0]
        keep = visible(starts, ends, sigmas, ray_indices, num_rays, model.alpha_threshold(), 1e-4)
        density, embedding = model.field.get_density(ray_samples[keep])
        return ray_samples[keep], ray_indices[keep], {"density": density, "embedding": embedding}

    monkeypatch.setattr(model, "visible_samples", test_then_evaluate_again)
    with torch.no_grad():
        twice = model(bundle)
    for name in ("rgb", "depth", "accumulation", "num_samples_per_ray"):
        torch.testing.assert_close(once[name], twice[name])


def test_training_replays_the_density_tests_lookups(monkeypatch) -> None:
    """On the CPU the training pass reuses the hash features the visibility test looked up for the kept samples:
    the same loss and gradients as looking them up again, with each sample looked up once."""
    from frinr_nerfstudio.method.field_components.hash_encoding import CPUHashEncoding

    model = capture_model().train()
    run_callbacks(model, 0)
    looked_up = []
    lookup = CPUHashEncoding.pytorch_fwd

    def counted(encoding, x):
        looked_up.append(x.reshape(-1, 3).shape[0])
        return lookup(encoding, x)

    monkeypatch.setattr(CPUHashEncoding, "pytorch_fwd", counted)

    def step() -> tuple[torch.Tensor, list[torch.Tensor], int, int]:
        model.zero_grad()
        looked_up.clear()
        torch.manual_seed(0)  # the same stratified march
        outputs = model(rays(128))
        loss = model.get_loss_dict(outputs, {"image": torch.full((128, 3), 0.5)})["rgb_loss"]
        loss.backward()
        return loss, [p.grad.clone() for p in model.field.parameters()], sum(looked_up), outputs["num_samples_per_ray"]

    replayed, replayed_grads, replayed_lookups, kept = step()
    monkeypatch.setattr(model.field, "lookups", lambda ray_samples: None)  # look the kept samples up again
    again, again_grads, again_lookups, _ = step()
    torch.testing.assert_close(replayed, again)
    for ours, theirs in zip(replayed_grads, again_grads, strict=True):
        torch.testing.assert_close(ours, theirs)
    assert kept.sum() > 0 and again_lookups - replayed_lookups == kept.sum()


def test_cone_angle_is_settled_and_recorded_per_scene() -> None:
    """config.yml records the step growth a run used, so a later default cannot change how an old run renders."""
    from nerfstudio.data.dataparsers.blender_dataparser import BlenderDataParserConfig
    from nerfstudio.data.dataparsers.nerfstudio_dataparser import NerfstudioDataParserConfig

    from frinr_nerfstudio.method.models.dvgo import DVGOModelConfig

    off = {"object_sphere": "off"}  # the parsers have no files to find a sphere in
    capture = NerfstudioDataParserConfig()
    for config, parser, cone in [(NGPModelConfig(**off), capture, CONTRACTED_CONE_ANGLE),
                                 (NGPModelConfig(), BlenderDataParserConfig(), 0.004),
                                 (DVGOModelConfig(), BlenderDataParserConfig(), 0.0),
                                 (NGPModelConfig(cone_angle=0.01, **off), capture, 0.01)]:  # fmt: skip
        config.settle(parser, "cpu")
        assert config.cone_angle == cone
    unsettled = NGPModelConfig()
    unsettled.adopt(config)  # a resumed run takes the recorded value
    assert unsettled.cone_angle == 0.01


def test_cube_contraction_is_nerfstudios_inf_norm_contraction() -> None:
    from nerfstudio.field_components.spatial_distortions import SceneContraction

    from frinr_nerfstudio.method.field_components.contraction import CubeContraction

    points = torch.randn(1000, 3) * torch.logspace(-1, 3, 1000)[:, None]  # inside the unit cube and far beyond it
    points[:3] = torch.tensor([[1.0, 0.0, 0.0], [-1.0, 1.0, 0.5], [2.0, -2.0, 2.0]])  # on the cube, ties of |x|
    points.requires_grad_(True)
    ours, theirs = CubeContraction()(points), SceneContraction(order=float("inf"))(points)
    torch.testing.assert_close(ours, theirs)
    torch.testing.assert_close(*(torch.autograd.grad(x.square().sum(), points)[0] for x in (ours, theirs)))


def field_gradients(model: NGPModel, bundle: RayBundle) -> tuple[torch.Tensor, torch.Tensor]:
    """The rendered colour and the RGB loss's gradient over every field parameter, flattened; the training march's
    jitter seeded, so that two models see the same samples."""
    model.zero_grad()
    torch.manual_seed(1)
    outputs = model(bundle)
    model.get_loss_dict(outputs, {"image": torch.full((len(bundle), 3), 0.5)})["rgb_loss"].backward()
    grads = [p.grad.flatten() for p in model.field.parameters() if p.grad is not None]
    return outputs["rgb"].detach(), torch.cat(grads)


def test_gradient_scaling_quiets_samples_near_the_camera_only() -> None:
    """nerfacto's option: gradients times the squared distance from the camera, capped at 1. Rays from inside the
    scene get smaller gradients and the same image; rays whose samples all lie a unit or more away are untouched."""
    torch.manual_seed(0)
    plain = capture_model(contraction="off").train()  # samples only in the box
    scaled = capture_model(contraction="off", use_gradient_scaling=True).train()
    scaled.load_state_dict(plain.state_dict())
    far = rays(64)  # origins 4 from the centre: every sample lies 2.5 or more from its camera
    rgb, grad = field_gradients(plain, far)
    scaled_rgb, scaled_grad = field_gradients(scaled, far)
    torch.testing.assert_close(scaled_rgb, rgb)
    torch.testing.assert_close(scaled_grad, grad)
    near = rays(64)
    near.origins = near.origins / 40  # origins 0.1 from the centre
    for model in (plain, scaled):
        model.config.far_plane = 0.5  # every sample within half a unit: its gradients scaled by 0.25 or less
    rgb, grad = field_gradients(plain, near)
    scaled_rgb, scaled_grad = field_gradients(scaled, near)
    torch.testing.assert_close(scaled_rgb, rgb)  # the image is the same; only the gradients shrink
    assert 0 < scaled_grad.norm() <= 0.25 * grad.norm()


def test_gradient_scaling_under_autocast_keeps_gradients_finite() -> None:
    """On CUDA the field runs under float16 autocast while the scale is float32; bfloat16 reproduces the mix."""
    torch.manual_seed(0)
    model = capture_model(use_gradient_scaling=True).train()
    bundle = rays(64)
    bundle.origins = bundle.origins / 40
    with torch.autocast("cpu", dtype=torch.bfloat16):
        _, grad = field_gradients(model, bundle)
    assert grad.abs().sum() > 0 and torch.isfinite(grad).all()
