"""The shared training loop: what it does when the loss stops being a number."""

import math

import pytest
import torch

from frinr_core.train import Diverged, TrainOptions, fit


def test_fit_stops_with_diverged_when_the_loss_is_not_finite():
    model = torch.nn.Linear(1, 1)
    inputs = torch.ones(4, 1)
    with pytest.raises(Diverged, match="loss is nan at step 1; lower the learning rate"):
        fit(model, lambda _: (inputs, torch.full((4, 1), math.nan)), options=TrainOptions(steps=3), lr=1e-3)
