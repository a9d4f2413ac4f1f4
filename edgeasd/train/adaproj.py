"""AdaProj: angular classification against class-specific subspaces, AdaCos-scaled.

Each class ``c`` owns ``m`` learnable unit vectors ``W_c`` (shape ``(dim, m)``, here
``m = 32``) spanning a subspace. An embedding ``x`` (unit norm) is compared with its
projection ``P_c x = W_c W_cᵀ x`` by the cosine ``cos θ_c = <x, P_c x> / ‖P_c x‖``
(which equals the norm of the orthogonal projection when ``W_c`` is orthonormal). The
logits ``s · cos θ_c`` go through softmax cross-entropy with soft targets (mixup), and
the scale ``s`` is set each batch as in AdaCos (:mod:`edgeasd.train.adacos`).
Compared with one centre per class, a subspace lets normal sounds of a class spread
over several directions, which keeps the embedding informative for anomaly detection.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from edgeasd.errors import InputError
from edgeasd.train.adacos import AdaCosLoss


class AdaProj(AdaCosLoss):
    """AdaProj classification loss.

    Parameters
    ----------
    dim : int
        Embedding width.
    n_classes : int
        Number of classes (at least 2).
    subspace_dim : int
        Vectors spanning each class subspace.
    """

    def __init__(self, dim: int, n_classes: int, subspace_dim: int = 32) -> None:
        super().__init__()
        if n_classes < 2:
            raise InputError(f"AdaProj needs at least 2 classes, got {n_classes}")
        self.n_classes = n_classes
        self.weight = nn.Parameter(torch.randn(n_classes, subspace_dim, dim) / math.sqrt(dim))
        self.register_buffer("scale", torch.tensor(math.sqrt(2.0) * math.log(n_classes - 1)))

    def cosines(self, x: torch.Tensor) -> torch.Tensor:
        """Cosine between each embedding and its projection on each class subspace.

        Parameters
        ----------
        x : torch.Tensor, shape (batch, dim)

        Returns
        -------
        torch.Tensor, shape (batch, n_classes), values in [-1, 1]
        """
        x = F.normalize(x, dim=1)
        w = F.normalize(self.weight, dim=2)  # (c, m, d)
        coef = torch.einsum("bd,cmd->bcm", x, w)
        proj = torch.einsum("bcm,cmd->bcd", coef, w)
        cos = (proj * x.unsqueeze(1)).sum(dim=2) / proj.norm(dim=2).clamp_min(1e-8)
        return cos.clamp(-1.0, 1.0)

    def centre_cosines(self, x: torch.Tensor) -> torch.Tensor:
        """:meth:`cosines` as one centre per class, shape (batch, n_classes, 1)."""
        return self.cosines(x)[:, :, None]
