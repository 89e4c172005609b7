import torch
import torch.nn.functional as F

from projects.image_classifier.gem import GeM
from projects.image_classifier.model import LesionClassifier


def test_gem_with_p_one_is_average_pooling():
    x = torch.rand(2, 5, 7, 7) + 0.1
    assert torch.allclose(GeM(p=1.0)(x), F.adaptive_avg_pool2d(x, 1).flatten(1), atol=1e-6)


def test_gem_with_large_p_approaches_max_pooling():
    x = torch.rand(2, 5, 7, 7) + 0.1
    gem = GeM(p=200.0, p_max=200.0)(x)
    assert torch.allclose(gem, x.amax(dim=(2, 3)), rtol=0.03)


def test_gem_lies_between_mean_and_max_and_starts_at_three():
    x = torch.rand(3, 4, 5, 5)
    g = GeM()
    assert g.p.item() == 3.0
    out = g(x)
    assert (out >= F.adaptive_avg_pool2d(x, 1).flatten(1) - 1e-6).all()
    assert (out <= x.amax(dim=(2, 3)) + 1e-6).all()


def test_gem_p_is_learned_and_negative_inputs_are_safe():
    g = GeM()
    out = g(torch.randn(2, 3, 4, 4))  # negatives clamp to eps: no NaN from x ** p
    assert torch.isfinite(out).all()
    out.sum().backward()
    assert g.p.grad is not None and torch.isfinite(g.p.grad)


def test_gem_p_is_clamped_in_forward():
    g = GeM(p=0.2)
    x = torch.rand(1, 2, 3, 3) + 0.1
    assert torch.allclose(g(x), GeM(p=1.0)(x))


def test_classifier_uses_gem_on_a_timm_backbone():
    m = LesionClassifier(
        backbone="test_efficientnet", pretrained=False, gem_p=3.0, gem_eps=1e-6, dropout=0.2
    )
    assert isinstance(m.pool, GeM)
    assert m(torch.randn(2, 3, 64, 64)).shape == (2,)


def test_the_configured_gem_p_and_eps_reach_the_pooling_layer(project_config):
    """A sweep over `model.gem_p` tunes nothing unless the value gets to the layer."""
    from projects.image_classifier.config import ImageClassifierConfig
    from projects.image_classifier.module import LesionModule
    from shared.config import to_dict, validate

    cfg = validate(
        project_config(
            "image_classifier", "experiment=smoke", "model.gem_p=4.25", "model.gem_eps=1e-5"
        ),
        ImageClassifierConfig,
    )
    module = LesionModule(to_dict(cfg.model), to_dict(cfg.optim), min_tpr=0.8)
    assert module.model.pool.p.item() == 4.25 and module.model.pool.eps == 1e-5
    x = torch.rand(2, 8, 3, 3) + 0.1
    expected = x.pow(4.25).mean((2, 3)).pow(1 / 4.25)
    torch.testing.assert_close(module.model.pool(x).flatten(1), expected, rtol=1e-4, atol=1e-5)
