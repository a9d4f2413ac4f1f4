"""The AdaCos pieces shared by the angular losses: the dynamic scale and soft-target CE.

AdaCos (Zhang et al., CVPR 2019) replaces a hand-tuned logit scale ``s`` by one set each
training batch from the batch itself: ``s = log(B_avg) / cos(min(π/4, θ_med))``, with
``B_avg`` the mean (over samples) of the summed non-target exponents ``exp(s · cos)`` at
the current scale and ``θ_med`` the median angle between a sample and its target class.
:class:`~edgeasd.train.adaproj.AdaProj` (one subspace per class) and
:class:`~edgeasd.train.subcluster.SubClusterAdaCos` (several centres per class) both use it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


@torch.no_grad()
def adacos_scale(scale: torch.Tensor, cos: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The AdaCos scale of one batch.

    Parameters
    ----------
    scale : torch.Tensor, shape ()
        The current scale (used for ``B_avg``).
    cos : torch.Tensor, shape (batch, n_classes, n_centres)
        Cosines between each sample and each centre (or subspace) of each class; a
        one-centre loss passes ``n_centres = 1``.
    target : torch.Tensor, shape (batch, n_classes)
        Soft class targets; rows summing to 0 are ignored.

    Returns
    -------
    torch.Tensor, shape ()
        The new scale, clamped to [1, 64]; ``scale`` unchanged when no row has a target.

    Notes
    -----
    Non-target terms are all centres of classes whose target is 0. A sample's target angle
    is ``acos`` of its target-weighted cosine to the *nearest* centre of each target class
    (under mixup, the mix of its two classes' cosines).
    """
    valid = target.sum(dim=1) > 0
    if not bool(valid.any()):
        return scale
    cos, target = cos[valid], target[valid]
    non_target = (target == 0).float()[:, :, None]
    b_avg = (torch.exp(scale * cos) * non_target).sum(dim=(1, 2)).mean()
    nearest = cos.max(dim=2).values
    theta = torch.acos(((nearest * target).sum(dim=1) / target.sum(dim=1)).clamp(-1.0, 1.0))
    theta_med = torch.median(theta).clamp(max=math.pi / 4)
    return (torch.log(b_avg.clamp_min(1e-6)) / torch.cos(theta_med)).clamp(1.0, 64.0)


def soft_cross_entropy(
    logits: torch.Tensor, target: torch.Tensor, weight: torch.Tensor
) -> torch.Tensor:
    """Weighted mean cross-entropy of class logits against soft targets.

    Parameters
    ----------
    logits : torch.Tensor, shape (batch, n_classes)
    target : torch.Tensor, shape (batch, n_classes)
        Soft targets, each row summing to 1 (or 0 for ignored rows).
    weight : torch.Tensor, shape (batch,)
        Per-sample weight (0 excludes a sample).

    Returns
    -------
    torch.Tensor, shape ()
    """
    per_sample = -(target * F.log_softmax(logits, dim=1)).sum(dim=1)
    return (per_sample * weight).sum() / weight.sum().clamp_min(1.0)


class AdaCosLoss(nn.Module):
    """An angular classification loss with the AdaCos scale: what AdaProj and sub-cluster
    AdaCos share.

    A subclass holds a ``scale`` buffer and defines :meth:`centre_cosines`; a class's logit
    is ``logsumexp_j(s · cos_j)`` over its centres (with one centre, ``s · cos``).
    """

    scale: torch.Tensor

    def centre_cosines(self, x: torch.Tensor) -> torch.Tensor:
        """Cosines between each embedding and each centre (or subspace) of each class.

        Parameters
        ----------
        x : torch.Tensor, shape (batch, dim)

        Returns
        -------
        torch.Tensor, shape (batch, n_classes, n_centres), values in [-1, 1]
        """
        raise NotImplementedError

    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits at the current scale, shape (batch, n_classes)."""
        return torch.logsumexp(self.scale * self.centre_cosines(x), dim=2)

    def forward(self, x: torch.Tensor, target: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """Weighted soft-target cross-entropy of the class logits.

        Parameters
        ----------
        x : torch.Tensor, shape (batch, dim)
            Embeddings.
        target : torch.Tensor, shape (batch, n_classes)
            Soft class targets, each row summing to 1 (or 0 for ignored rows).
        weight : torch.Tensor, shape (batch,)
            Per-sample weight (0 excludes a sample, e.g. target-domain clips).

        Returns
        -------
        torch.Tensor, shape ()
        """
        cos = self.centre_cosines(x)
        if self.training:
            self.scale.copy_(adacos_scale(self.scale, cos.detach(), target))
        return soft_cross_entropy(torch.logsumexp(self.scale * cos, dim=2), target, weight)
