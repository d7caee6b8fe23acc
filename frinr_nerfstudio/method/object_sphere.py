"""Where a walk-around's object can be, from the poses alone: a sphere that rays start at, not before.

A camera's first stretch of ray lies in no other camera's view when the cameras stand well away from an object and
look at it: floaters painted there cost that training view nothing, and the views between show them as haze in
front of the object (maryrose: +1.7 dB at 1 000 steps with rays starting just short of the object; BENCHMARKS.md,
*near plane*). nerfstudio-data gives no depth bounds, so the bound comes from the cameras: where their optical axes
meet, and how large an object there can be and still show whole in every photo. A ray starts where it could first
reach that sphere, so a viewer camera closer to the object (or inside the sphere) still sees all of it. The rule
holds only for cameras around an object; a hand-held walk through a room (office) looks past near things at far
ones, and gets no sphere.
"""

from __future__ import annotations

import copy
import math

import torch
from nerfstudio.cameras.cameras import Cameras, CameraType
from nerfstudio.data.dataparsers.base_dataparser import DataParserConfig
from torch import Tensor

from frinr_nerfstudio.nerfstudio_fixes.datacheck import use_checked_parser

MIN_PARTNER_ANGLE = 60.0
"""Degrees. Cameras surround a point when each has another that sees it from at least this far to the side (so the
space just in front of any camera is seen edge-on by some other). maryrose's turntable: 127; lego's hemisphere: 83;
office's hand-held walk: 42."""


def axes_focus(origins: Tensor, forwards: Tensor) -> Tensor | None:
    """The point (3,) nearest to every optical axis (origins, unit forwards: (n, 3)) in the least-squares sense; None
    when the axes are (near) parallel."""
    across = torch.eye(3, dtype=origins.dtype) - forwards[:, :, None] * forwards[:, None, :]  # (n, 3, 3) projectors
    system, target = across.sum(0), (across @ origins[:, :, None]).sum(0)  # (3, 3), (3, 1)
    if torch.linalg.cond(system) > 1e6:
        return None
    return torch.linalg.solve(system, target).squeeze(-1)


def find_object_sphere(cameras: Cameras) -> tuple[float, float, float, float] | None:
    """(x, y, z, radius) of the object that cameras surrounding it look at, or None for any other capture.

    The object is taken to show whole in every photo: seen from the cameras to its side, it then reaches no further
    from the axes' focus than d·tan(θ), d being a camera's distance to the focus and θ its narrower half field of
    view; the widest of those is the radius (maryrose: 0.17, its cameras 0.90-1.01 from the focus).
    """
    if cameras.shape[0] < 2 or not bool((cameras.camera_type == CameraType.PERSPECTIVE.value).all()):
        return None  # a fisheye's field of view is not atan(w / 2f)
    poses = cameras.camera_to_worlds.double()  # (n, 3, 4), OpenGL: the camera looks down -z
    origins, forwards = poses[:, :, 3], -poses[:, :, 2] / poses[:, :, 2].norm(dim=-1, keepdim=True)
    focus = axes_focus(origins, forwards)
    if focus is None:
        return None
    to_focus = focus - origins  # (n, 3)
    distance = to_focus.norm(dim=-1)  # (n,)
    half_fov = torch.minimum(
        torch.atan(cameras.width.squeeze(-1) / (2 * cameras.fx.squeeze(-1))),
        torch.atan(cameras.height.squeeze(-1) / (2 * cameras.fy.squeeze(-1))),
    ).double()  # (n,)
    off_axis = torch.acos(((to_focus * forwards).sum(-1) / distance).clamp(-1, 1))  # (n,)
    if not bool((off_axis < half_fov).all()):
        return None  # the focus is behind a camera or outside its view: the axes do not meet on an object
    seen_from = -to_focus / distance[:, None]  # (n, 3) unit directions from the focus to each camera
    widest = torch.acos((seen_from @ seen_from.T).clamp(-1, 1).min(dim=1).values)  # (n,) each camera's widest partner
    if float(widest.min()) < math.radians(MIN_PARTNER_ANGLE):
        return None
    return (*focus.tolist(), float((distance * torch.tan(half_fov)).max()))


def ray_starts(origins: Tensor, sphere: tuple[float, float, float, float], near_plane: float) -> Tensor:
    """(R, 1) distances along rays from ``origins`` (R, 3) at which each could first reach the sphere (at least the
    near plane): nothing nearer is marched."""
    centre = origins.new_tensor(sphere[:3])
    return ((origins - centre).norm(dim=-1, keepdim=True) - sphere[3]).clamp_min(near_plane)


def train_cameras(dataparser: DataParserConfig) -> Cameras:
    """The training cameras as the run will see them (after the dataparser's centring and scaling); a bad scene fails
    in one line here too (the validating parser, on a copy: the config keeps the stock parser it was given)."""
    return use_checked_parser(copy.copy(dataparser)).setup().get_dataparser_outputs("train").cameras
