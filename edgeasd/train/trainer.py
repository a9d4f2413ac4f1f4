"""Training loop of Direct-ACT: AdaProj + feature exchange + mixup, resumable.

Per batch of 64 random 10 s crops:

1. **mixup** on waveforms: with probability 0.5 a clip is mixed with its partner in the
   reversed batch, ``λ x_i + (1 - λ) x_j`` with ``λ ~ U(0, 1)``; its class target is
   mixed likewise;
2. the two branch embeddings are computed; the **class loss** is AdaProj over the
   ``C`` classes (machine × section × attributes) on the concatenation (or, with
   ``loss="subcluster"``, sub-cluster AdaCos: :mod:`edgeasd.train.subcluster`);
3. **feature exchange** (self-supervised): with probability 0.5 a clip's spectrogram
   branch embedding is replaced by its partner's; a second head of the same loss over ``3C``
   classes must tell ``[own class | exchanged: 0.5·own, 0.5·partner's]`` apart.

Target-domain clips carry no class loss (weight 0), as in the reference code; they only
shape the batch-norm statistics. Adam, lr 1e-3. The checkpoint (model, heads,
optimizer, step, RNG state, classes) is written atomically every ``checkpoint_every``
steps and at the end, so an interrupted run continues where it stopped.
"""

from __future__ import annotations

import logging
import math
import pickle
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from edgeasd.atomic import PUBLIC, replacing
from edgeasd.errors import InputError, ModelError
from edgeasd.train.adaproj import AdaProj
from edgeasd.train.data import ClipSet, scan
from edgeasd.train.directact import DirectACT, DirectACTConfig
from edgeasd.train.subcluster import SubClusterAdaCos

log = logging.getLogger(__name__)
CHECKPOINT = "checkpoint.pt"
LOSSES = ("adaproj", "subcluster")


@dataclass
class TrainConfig:
    """Options of one training run (stored in the checkpoint).

    ``crop_seconds`` trades fidelity for speed on small CPUs: the spectrogram branch
    (fully convolutional, max-pooled over time) then sees a random crop of that length
    during training while the spectrum branch still sees the whole window; at inference
    both see the whole window. None trains on full windows, as the reference does.

    ``fault_data`` adds **fault-aware training** (outlier exposure), an edgeasd
    extension of the reference recipe: the anomalous ``test`` clips of another
    DCASE-layout folder (e.g. simulated faults of the training machine types, rendered
    with a different seed) join the auxiliary task as one extra class per machine type
    and section. The class loss then rewards features that separate fault signatures
    (impulse trains, sidebands, cavitation noise) from normal operation, not only the
    operating attributes.

    ``loss`` picks the class loss of both heads: ``"adaproj"`` (the reference recipe,
    ``subspace_dim`` vectors per class) or ``"subcluster"`` (sub-cluster AdaCos,
    ``n_subclusters`` fixed centres per class). A resumed run keeps its checkpoint's loss.
    """

    data: str
    out: str
    machines: list[str] | None = None
    exclude: list[str] = field(default_factory=list)
    epochs: float = 10.0
    max_minutes: float | None = None
    batch_size: int = 64
    lr: float = 1e-3
    subspace_dim: int = 32
    loss: str = "adaproj"
    n_subclusters: int = 16
    mixup_prob: float = 0.5
    featex_prob: float = 0.5
    seed: int = 0
    threads: int | None = None
    checkpoint_every: int = 20
    crop_seconds: float | None = None
    fault_data: str | None = None
    model: dict = field(default_factory=dict)  # DirectACTConfig fields

    def __post_init__(self) -> None:
        if self.batch_size < 2:
            raise InputError(f"batch_size must be at least 2, got {self.batch_size}")
        if self.epochs <= 0 or self.lr <= 0:
            raise InputError("epochs and lr must be positive")
        if self.crop_seconds is not None and self.crop_seconds <= 0:
            raise InputError(f"crop_seconds must be positive, got {self.crop_seconds}")
        if self.loss not in LOSSES:
            raise InputError(
                f"unknown loss {self.loss!r}", help=f"choose one of: {', '.join(LOSSES)}"
            )
        if self.n_subclusters < 1:
            raise InputError(
                f"the number of sub-clusters (--subclusters) must be at least 1, "
                f"got {self.n_subclusters}"
            )


class Heads(torch.nn.Module):
    """The network and its two classification heads, checkpointed together.

    Parameters
    ----------
    cfg : DirectACTConfig
    n_classes : int
    subspace_dim : int
        AdaProj's vectors per class.
    loss : str
        One of :data:`LOSSES`.
    n_subclusters : int
        Sub-cluster AdaCos's centres per class.
    """

    def __init__(
        self,
        cfg: DirectACTConfig,
        n_classes: int,
        subspace_dim: int,
        loss: str = "adaproj",
        n_subclusters: int = 16,
    ) -> None:
        super().__init__()
        self.net = DirectACT(cfg)
        dim = cfg.embedding_dim
        if loss == "subcluster":
            self.cls = SubClusterAdaCos(dim, n_classes, n_subclusters)
            self.featex = SubClusterAdaCos(dim, 3 * n_classes, n_subclusters)
        else:
            self.cls = AdaProj(dim, n_classes, subspace_dim)
            self.featex = AdaProj(dim, 3 * n_classes, subspace_dim)


def training_loss(
    heads: Heads,
    x: torch.Tensor,
    labels: torch.Tensor,
    gen: torch.Generator,
    mixup_prob: float = 0.5,
    featex_prob: float = 0.5,
    crop_samples: int | None = None,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Class + feature-exchange loss of one batch.

    Parameters
    ----------
    heads : Heads
    x : torch.Tensor, shape (batch, samples)
        Waveforms.
    labels : torch.Tensor, shape (batch,), int64
        Class indices, ``-1`` for clips without class loss (target domain).
    gen : torch.Generator
        Source of the mixup and exchange decisions.
    crop_samples : int, optional
        Feed the spectrogram branch a random crop of this many samples (the same for the
        whole batch) instead of the full window; see :class:`TrainConfig`.

    Returns
    -------
    loss : torch.Tensor, shape ()
    parts : dict
        ``{"cls": float, "featex": float}``.
    """
    b, n_cls = x.shape[0], heads.cls.n_classes
    has = labels >= 0
    y = F.one_hot(labels.clamp_min(0), n_cls).float() * has[:, None]
    w = has.float()

    mix = (torch.rand(b, generator=gen) < mixup_prob).float()
    lam = 1.0 - mix * torch.rand(b, generator=gen)  # 1 where not mixed
    x = lam[:, None] * x + (1 - lam[:, None]) * x.flip(0)
    y = lam[:, None] * y + (1 - lam[:, None]) * y.flip(0)
    w = torch.where(mix > 0, w * w.flip(0), w)

    e1 = heads.net.spectrum(x)
    if crop_samples and crop_samples < x.shape[1]:
        start = int(torch.randint(0, x.shape[1] - crop_samples + 1, (1,), generator=gen))
        e2 = heads.net.spectrogram(x[:, start : start + crop_samples])
    else:
        e2 = heads.net.spectrogram(x)
    cls_loss = heads.cls(torch.cat([e1, e2], dim=1), y, w)

    swap = (torch.rand(b, generator=gen) < featex_prob)[:, None]
    e2x = torch.where(swap, e2.flip(0), e2)
    zeros = torch.zeros_like(y)
    y_keep = torch.cat([y, zeros, zeros], dim=1)
    y_swap = torch.cat([zeros, 0.5 * y, 0.5 * y.flip(0)], dim=1)
    y_fx = torch.where(swap, y_swap, y_keep)
    w_fx = torch.where(swap[:, 0], w * w.flip(0), w)
    fx_loss = heads.featex(torch.cat([e1, e2x], dim=1), y_fx, w_fx)
    return cls_loss + fx_loss, {"cls": cls_loss.item(), "featex": fx_loss.item()}


def _save(path: Path, state: dict) -> None:
    with replacing(path, PUBLIC, fsync=False) as fh:
        torch.save(state, fh)


def load_checkpoint(path: str | Path) -> dict:
    """Read a training checkpoint (a file or a run folder holding ``checkpoint.pt``).

    Raises
    ------
    ModelError
        When the file is missing, corrupt, not an edgeasd checkpoint, or holds pickled
        objects other than tensors and plain values (refused unread: ``weights_only``).
    """
    path = Path(path)
    if path.is_dir():
        path = path / CHECKPOINT
    if not path.is_file():
        raise ModelError(
            f"no training checkpoint at {path}",
            help="train first: edgeasd train --data DIR --out RUN_DIR",
        )
    try:
        # weights_only: tensors, containers and plain values only. Unpickling arbitrary
        # objects runs code from the file; a checkpoint has none (see checkpoint() in train).
        state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch reports a refused object as "... unsupported GLOBAL module.name ...".
        unsafe = [ln.strip() for ln in str(exc).splitlines() if "GLOBAL " in ln]
        if not unsafe:
            raise ModelError(
                f"cannot read checkpoint {path}: corrupt file", help="retrain"
            ) from exc
        raise ModelError(
            f"refused to load checkpoint {path}: it holds a Python object other than tensors "
            f"and plain values ({unsafe[0]})",
            help="loading it could run code from the file: retrain, or load only "
            "checkpoints written by edgeasd train",
        ) from exc
    except Exception as exc:  # torch raises many types for a bad file
        raise ModelError(f"cannot read checkpoint {path}: {exc}", help="retrain") from exc
    if not isinstance(state, dict) or "model_config" not in state:
        raise ModelError(f"{path} is not an edgeasd training checkpoint", help="retrain")
    return state


def network_from_checkpoint(state: dict) -> DirectACT:
    """The trained :class:`DirectACT` (eval mode) of a checkpoint dict."""
    cfg = DirectACTConfig(**state["model_config"])
    net = DirectACT(cfg)
    prefix = "net."
    net.load_state_dict(
        {k[len(prefix) :]: v for k, v in state["heads"].items() if k.startswith(prefix)}
    )
    return net.eval()


def _check_same_loss(cfg: TrainConfig, resumed: dict, ckpt_path: Path) -> None:
    """Refuse to resume a checkpoint with another loss than the one asked for."""
    tc = resumed.get("train_config", {})
    had = (tc.get("loss", "adaproj"), tc.get("n_subclusters", 16))
    if had[0] != cfg.loss or (cfg.loss == "subcluster" and had[1] != cfg.n_subclusters):
        asked = f"--loss {cfg.loss}" + (
            f" --subclusters {cfg.n_subclusters}" if cfg.loss == "subcluster" else ""
        )
        was = f"--loss {had[0]}" + (f" --subclusters {had[1]}" if had[0] == "subcluster" else "")
        raise InputError(
            f"{ckpt_path} was trained with {was}, not {asked}",
            help=f"resume with {was}, or start over with --restart",
        )


def train(cfg: TrainConfig, progress: bool = True) -> Path:
    """Train (or resume) a Direct-ACT model; returns the checkpoint path.

    Parameters
    ----------
    cfg : TrainConfig
    progress : bool
        Show tqdm bars.
    """
    from tqdm import tqdm

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    ckpt_path = out / CHECKPOINT
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    resumed = load_checkpoint(ckpt_path) if ckpt_path.is_file() else None
    model_cfg = DirectACTConfig(**(resumed["model_config"] if resumed else cfg.model))

    clips = [c for c in scan(cfg.data, "train", cfg.machines) if c.machine not in cfg.exclude]
    if cfg.fault_data:
        faults = [
            c
            for c in scan(cfg.fault_data, "test", cfg.machines)
            if c.label == "anomaly" and c.machine not in cfg.exclude
        ]
        if not faults:
            raise InputError(
                f"no anomalous test clips under {cfg.fault_data}",
                help="--fault-data needs <machine>/test/*_anomaly_*.wav files",
            )
        clips += faults
    data = ClipSet(
        clips,
        model_cfg.sample_rate,
        classes=resumed["classes"] if resumed else None,
        progress=progress,
    )
    if len(data.classes) < 2:
        raise InputError(
            f"{cfg.data} has {len(data.classes)} source-domain class(es); need at least 2",
            help="train on several machine types or attribute values",
        )
    if resumed:
        _check_same_loss(cfg, resumed, ckpt_path)
    torch.manual_seed(cfg.seed)
    heads = Heads(model_cfg, len(data.classes), cfg.subspace_dim, cfg.loss, cfg.n_subclusters)
    opt = torch.optim.Adam(heads.parameters(), lr=cfg.lr)
    steps_per_epoch = max(1, len(data) // cfg.batch_size)
    total = math.ceil(cfg.epochs * steps_per_epoch)
    step, rng, gen = 0, np.random.default_rng(cfg.seed), torch.Generator().manual_seed(cfg.seed)
    losses: list[float] = []
    if resumed:
        heads.load_state_dict(resumed["heads"])
        opt.load_state_dict(resumed["optimizer"])
        step, losses = resumed["step"], list(resumed["losses"])
        rng.bit_generator.state = resumed["numpy_rng"]
        gen.set_state(resumed["torch_rng"])
        log.info("resuming %s at step %d", ckpt_path, step)

    def checkpoint() -> None:
        _save(
            ckpt_path,
            {
                "heads": heads.state_dict(),
                "optimizer": opt.state_dict(),
                "step": step,
                "losses": losses,
                "numpy_rng": rng.bit_generator.state,
                "torch_rng": gen.get_state(),
                "classes": data.classes,
                "model_config": model_cfg.to_dict(),
                "train_config": asdict(cfg),
                "n_clips": len(data),
                "machines": sorted({c.machine for c in data.clips}),
            },
        )

    started, n = time.monotonic(), model_cfg.window_samples
    heads.train()
    bar = tqdm(total=total, initial=step, desc="training", unit="step", disable=not progress)
    order = rng.permutation(len(data))
    while step < total:
        pos = (step % steps_per_epoch) * cfg.batch_size
        if pos == 0:
            order = rng.permutation(len(data))
        idx = order[pos : pos + cfg.batch_size]
        x = torch.from_numpy(data.batch(idx, n, rng))
        loss, parts = training_loss(
            heads,
            x,
            torch.from_numpy(data.labels[idx]),
            gen,
            cfg.mixup_prob,
            cfg.featex_prob,
            round(cfg.crop_seconds * model_cfg.sample_rate) if cfg.crop_seconds else None,
        )
        if not torch.isfinite(loss):
            raise ModelError(f"training diverged at step {step} (loss {loss})", help="lower lr")
        opt.zero_grad()
        loss.backward()
        opt.step()
        step += 1
        losses.append(loss.item())
        bar.update(1)
        bar.set_postfix(loss=f"{losses[-1]:.3f}", cls=f"{parts['cls']:.3f}")
        timed_out = cfg.max_minutes and time.monotonic() - started > 60 * cfg.max_minutes
        if step % cfg.checkpoint_every == 0 or step == total or timed_out:
            checkpoint()
        if timed_out:
            log.warning("stopping at step %d of %d: time limit reached", step, total)
            break
    bar.close()
    return ckpt_path
