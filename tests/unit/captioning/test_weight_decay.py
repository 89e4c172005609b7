"""The shared AdamW helper decays weight matrices only (nanoGPT's configure_optimizers)."""

from types import SimpleNamespace

import lightning as L
import torch
from torch import nn

from shared.lightning import adamw_warmup_cosine

OPTIM = {"lr": 1e-3, "weight_decay": 0.1, "warmup_fraction": 0.1, "min_lr_factor": 0.1}


class _Mixed(L.LightningModule):
    """One of each kind: a matrix, a bias, a norm, an embedding table, a ViT-style position
    table and a GeM-like scalar exponent."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 4)
        self.norm = nn.LayerNorm(4)
        self.emb = nn.Embedding(10, 4)
        self.pos_embed = nn.Parameter(torch.zeros(1, 3, 4))
        self.p = nn.Parameter(torch.tensor(3.0))


def _decay_by_name(module: L.LightningModule) -> dict[str, float]:
    module._trainer = SimpleNamespace(estimated_stepping_batches=10)  # what the helper reads
    opt = adamw_warmup_cosine(module, OPTIM)["optimizer"]
    by_param = {id(p): g["weight_decay"] for g in opt.param_groups for p in g["params"]}
    return {n: by_param[id(p)] for n, p in module.named_parameters()}


def test_weight_decay_skips_biases_norms_embeddings_and_gem_p():
    decay = _decay_by_name(_Mixed())
    assert decay == {
        "linear.weight": 0.1,
        "linear.bias": 0.0,
        "norm.weight": 0.0,
        "norm.bias": 0.0,
        "emb.weight": 0.0,
        "pos_embed": 0.0,
        "p": 0.0,
    }


def test_a_head_tied_to_the_embedding_is_not_decayed():
    module = _Mixed()
    module.head = nn.Linear(4, 10, bias=False)
    module.head.weight = module.emb.weight  # GPT-2's tied output head
    decay = _decay_by_name(module)
    assert decay["emb.weight"] == 0.0 and "head.weight" not in decay  # one tensor, one group
