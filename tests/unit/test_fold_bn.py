"""BatchNorm folded into the convolutions of a frozen network: the same function on the
pretrained Lite0 (to float rounding), no BatchNorm left, the original untouched, and a folding
that would change the function not used."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from shared.fold_bn import fold_batchnorm
from shared.pretrained import create_timm_model


def _lite0() -> nn.Module:
    return create_timm_model("pkg:efficientnet_lite0", True, num_classes=0).eval()


def _features(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return m.forward_features(x)


def test_the_folded_pretrained_backbone_computes_the_same_features_without_batchnorm():
    torch.manual_seed(0)
    model = _lite0().to(memory_format=torch.channels_last)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.randn(4, 3, 96, 96).contiguous(memory_format=torch.channels_last)
    folded = fold_batchnorm(model, x[:2], _features)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in model.modules())
    assert n_bn == 49  # stem, 16 blocks' two or three, head: every one folded
    assert folded.conv_stem.bias is not None
    assert folded.conv_stem.weight.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        want, got = model.forward_features(x), folded.forward_features(x)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4 * want.abs().max().item())
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())
    assert all(isinstance(m, nn.BatchNorm2d) for m in [model.bn1, model.bn2])


class _NormFirst(nn.Module):
    """Defines the convolution before the BatchNorm but applies the BatchNorm first."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 3, padding=1)
        self.bn = nn.BatchNorm2d(3)
        with torch.no_grad():
            self.bn.running_mean.uniform_(-1, 1)
            self.bn.running_var.uniform_(0.5, 2)
            self.bn.weight.uniform_(0.5, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(self.bn(x))


def test_a_folding_that_would_change_the_function_leaves_the_module_unfolded(caplog):
    torch.manual_seed(0)
    module = _NormFirst().eval()
    assert fold_batchnorm(module, torch.randn(2, 3, 8, 8)) is module
    assert "BatchNorm not folded into _NormFirst: folding changed its output" in caplog.text


def test_a_module_in_training_mode_is_refused_and_one_without_batchnorm_is_returned_as_is():
    with pytest.raises(ValueError, match="eval mode"):
        fold_batchnorm(_NormFirst().train(), torch.randn(2, 3, 8, 8))
    dropout_on = nn.Sequential(nn.Conv2d(3, 3, 1), nn.BatchNorm2d(3), nn.Dropout()).eval()
    dropout_on[2].train()
    with pytest.raises(ValueError, match="eval mode"):
        fold_batchnorm(dropout_on, torch.randn(2, 3, 8, 8))
    plain = nn.Sequential(nn.Conv2d(3, 3, 1), nn.ReLU()).eval()
    assert fold_batchnorm(plain, torch.randn(1, 3, 4, 4)) is plain
