"""siamrpnpp_ros.models.compat: the same behaviour on torch 1.13 (the distribution lane) and 2.x."""

from __future__ import annotations

import os
from collections import OrderedDict

import pytest
import torch
from torch import nn

from siamrpnpp_ros.models import SiamRPN, model_config
from siamrpnpp_ros.models.compat import load_weights_only, meta_device


class _RunsCode:
    """A pickle that would run a shell command when loaded without restrictions."""

    def __reduce__(self):
        return (os.system, ("echo this must never run",))


def test_meta_device_builds_shapes_without_memory():
    with meta_device():
        model = SiamRPN(model_config("r50"))
        conv = nn.Conv2d(3, 8, 3)
    assert all(p.device.type == "meta" for p in model.parameters())
    assert conv.weight.device.type == "meta" and conv.weight.shape == (8, 3, 3, 3)
    assert torch.zeros(1).device.type == "cpu", "the context must end with the block"


@pytest.mark.parametrize("zipfile", [True, False], ids=["zip", "legacy"])
def test_load_weights_only_reads_training_state_with_floats(tmp_path, zipfile):
    state = OrderedDict(weight=torch.arange(6.0).reshape(2, 3), bias=nn.Parameter(torch.ones(2)))
    payload = {
        "epoch": 3,
        "state_dict": state,
        "optimizer": {"state": {0: {"exp_avg": torch.zeros(2)}}, "param_groups": [{"lr": 0.01, "betas": (0.9, 0.99)}]},
    }
    path = tmp_path / "state.pth"
    torch.save(payload, path, _use_new_zipfile_serialization=zipfile)
    loaded = load_weights_only(path, map_location="cpu")
    assert loaded["epoch"] == 3 and loaded["optimizer"]["param_groups"][0]["lr"] == 0.01
    assert torch.equal(loaded["state_dict"]["weight"], state["weight"])


@pytest.mark.parametrize("zipfile", [True, False], ids=["zip", "legacy"])
def test_load_weights_only_refuses_code(tmp_path, capfd, zipfile):
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {}, "payload": _RunsCode()}, path, _use_new_zipfile_serialization=zipfile)
    with pytest.raises(Exception, match="Weights only load failed") as error:
        load_weights_only(path, map_location="cpu")
    assert "system" in str(error.value)
    assert "must never run" not in capfd.readouterr().out
