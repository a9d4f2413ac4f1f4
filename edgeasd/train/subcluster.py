"""Sub-cluster AdaCos: angular classification against several fixed centres per class.

Wilkinghoff, "Sub-cluster AdaCos: learning representations for anomalous sound
detection", IJCNN 2021. Each class ``c`` owns ``C`` centres ``w_cj`` (unit vectors, here
``C = 16``). The probability of a class is the summed softmax probability of its centres,
so its logit is ``logsumexp_j(s · cos(x, w_cj))``; the class logits then go through
softmax cross-entropy with soft (mixup) targets, and ``s`` is the AdaCos scale of
:mod:`edgeasd.train.adacos`, starting at ``√2 · log(n_classes · C − 1)`` as in the paper.
As in the reference implementation the centres are drawn at random and not trained
(a buffer, so resuming restores them): the network must place the normal sounds of a
class near some of its centres, which lets them spread over several modes instead of
collapsing to one, the same aim as AdaProj's subspaces.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from edgeasd.errors import InputError
from edgeasd.train.adacos import AdaCosLoss


class SubClusterAdaCos(AdaCosLoss):
    """Sub-cluster AdaCos classification loss.

    Parameters
    ----------
    dim : int
        Embedding width.
    n_classes : int
        Number of classes (at least 2).
    n_subclusters : int
        Centres per class (at least 1; 1 is plain AdaCos).
    """

    def __init__(self, dim: int, n_classes: int, n_subclusters: int = 16) -> None:
        super().__init__()
        if n_classes < 2:
            raise InputError(f"sub-cluster AdaCos needs at least 2 classes, got {n_classes}")
        if n_subclusters < 1:
            raise InputError(f"n_subclusters must be at least 1, got {n_subclusters}")
        self.n_classes = n_classes
        self.n_subclusters = n_subclusters
        centres = F.normalize(torch.randn(n_classes, n_subclusters, dim), dim=2)
        self.register_buffer("centres", centres)
        s0 = math.sqrt(2.0) * math.log(max(n_classes * n_subclusters - 1, 2))
        self.register_buffer("scale", torch.tensor(s0))

    def centre_cosines(self, x: torch.Tensor) -> torch.Tensor:
        """Cosine between each embedding and each centre.

        Parameters
        ----------
        x : torch.Tensor, shape (batch, dim)

        Returns
        -------
        torch.Tensor, shape (batch, n_classes, n_subclusters), values in [-1, 1]
        """
        cos = torch.einsum("bd,cjd->bcj", F.normalize(x, dim=1), self.centres)
        return cos.clamp(-1.0, 1.0)

    def cosines(self, x: torch.Tensor) -> torch.Tensor:
        """Cosine to the nearest centre of each class, shape (batch, n_classes)."""
        return self.centre_cosines(x).max(dim=2).values
