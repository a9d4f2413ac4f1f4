"""Sub-cluster AdaCos and the shared AdaCos scale against numpy references; training with it."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeasd.errors import InputError
from edgeasd.train.adacos import adacos_scale
from edgeasd.train.deploy import training_summary
from edgeasd.train.subcluster import SubClusterAdaCos
from edgeasd.train.trainer import TrainConfig, load_checkpoint, train

from .test_train import tiny_config

pytestmark = pytest.mark.train


def reference_loss(x, centres, scale, target, weight):
    """The paper's formulation, in plain numpy: softmax over every centre, class
    probability = sum of its centres' probabilities, soft-target cross-entropy.

    x (b, d), centres (n, C, d) unit rows, target (b, n), weight (b,)."""
    x = x / np.linalg.norm(x, axis=1, keepdims=True)
    b, (n, c, d) = len(x), centres.shape
    cos = (x @ centres.reshape(n * c, d).T).reshape(b, n, c)
    e = np.exp(scale * cos)
    p_class = e.sum(axis=2) / e.sum(axis=(1, 2))[:, None]
    per_sample = -(target * np.log(p_class)).sum(axis=1)
    return (per_sample * weight).sum() / max(weight.sum(), 1.0), cos


def reference_scale(scale, cos, target):
    """AdaCos scale in plain loops: cos (b, n, C), target (b, n)."""
    rows = [i for i in range(len(cos)) if target[i].sum() > 0]
    b_sum, thetas = 0.0, []
    for i in rows:
        b_sum += sum(
            math.exp(scale * cos[i, k, j])
            for k in range(cos.shape[1])
            if target[i, k] == 0
            for j in range(cos.shape[2])
        )
        mix = sum(target[i, k] * max(cos[i, k]) for k in range(cos.shape[1])) / target[i].sum()
        thetas.append(math.acos(mix))
    theta_med = min(math.pi / 4, float(torch.median(torch.tensor(thetas))))
    return min(64.0, max(1.0, math.log(b_sum / len(rows)) / math.cos(theta_med)))


def soft_targets(rng, b, n):
    """One-hot rows, some mixed pairwise (mixup), one ignored (all zero)."""
    labels = rng.integers(0, n, b)
    y = np.eye(n)[labels]
    lam = rng.uniform(0, 1, b)[:, None]
    mixed = rng.random(b) < 0.5
    y[mixed] = (lam * y + (1 - lam) * y[::-1])[mixed]
    y[0] = 0.0
    return y


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 5), st.integers(1, 6))
def test_loss_and_logits_match_the_summed_subcluster_softmax(seed, n_classes, n_sub):
    dim, b = 10, 9
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)  # the centres: the same example gives the same test
    loss = SubClusterAdaCos(dim, n_classes, n_sub).eval()  # eval: scale held fixed
    scale = rng.uniform(1.0, 20.0)
    loss.scale.fill_(scale)
    x = rng.standard_normal((b, dim))
    target, weight = soft_targets(rng, b, n_classes), rng.uniform(0, 2, b)
    centres = loss.centres.numpy().astype(np.float64)
    ref, cos = reference_loss(x, centres, scale, target, weight)
    t = lambda a: torch.from_numpy(a).float()  # noqa: E731
    got = loss(t(x), t(target), t(weight))
    np.testing.assert_allclose(float(got), ref, rtol=1e-4, atol=1e-5)
    logits = loss.logits(t(x)).numpy()
    # float32: scale (<= 20) x a cosine off by ~1e-6, so an absolute tolerance near zero
    np.testing.assert_allclose(
        logits, np.log(np.exp(scale * cos).sum(axis=2)), rtol=1e-4, atol=1e-4
    )
    np.testing.assert_allclose(loss.cosines(t(x)).numpy(), cos.max(axis=2), atol=1e-5)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 5), st.integers(1, 4))
def test_adacos_scale_matches_a_plain_reference(seed, n_classes, n_sub):
    rng = np.random.default_rng(seed)
    b = 8
    cos = rng.uniform(-1, 1, (b, n_classes, n_sub))
    target = soft_targets(rng, b, n_classes)
    scale = rng.uniform(1.0, 10.0)
    got = adacos_scale(torch.tensor(scale), torch.from_numpy(cos), torch.from_numpy(target))
    assert float(got) == pytest.approx(reference_scale(scale, cos, target), rel=1e-6)


def test_scale_is_unchanged_without_targets():
    s = torch.tensor(3.0)
    assert adacos_scale(s, torch.zeros(4, 3, 2), torch.zeros(4, 3)) is s


def test_needs_two_classes_and_one_subcluster():
    with pytest.raises(InputError, match="2 classes"):
        SubClusterAdaCos(8, 1)
    with pytest.raises(InputError, match="n_subclusters"):
        SubClusterAdaCos(8, 3, 0)


def test_centres_stay_fixed_while_an_embedding_learns_the_classes():
    torch.manual_seed(0)
    centers = torch.randn(4, 16)
    labels = torch.arange(4).repeat(32)
    x = centers[labels] + 0.3 * torch.randn(len(labels), 16)
    proj = torch.nn.Linear(16, 16)
    loss = SubClusterAdaCos(16, 4, n_subclusters=3)
    assert not list(loss.parameters())  # the centres are a buffer: not trained
    before = loss.centres.clone()
    opt = torch.optim.Adam(proj.parameters(), lr=0.05)
    y, w = torch.eye(4)[labels], torch.ones(len(labels))
    first, s0 = float(loss(proj(x), y, w).detach()), float(loss.scale)
    for _ in range(100):
        opt.zero_grad()
        out = loss(proj(x), y, w)
        out.backward()
        opt.step()
    assert float(out.detach()) < 0.5 * first
    assert float(loss.scale) != s0
    assert torch.equal(loss.centres, before)
    assert (loss.cosines(proj(x)).argmax(1) == labels).float().mean() > 0.95


def test_config_rejects_an_unknown_loss(tmp_path):
    with pytest.raises(InputError, match="unknown loss 'arcface'") as err:
        TrainConfig(data=".", out=str(tmp_path), loss="arcface")
    assert "adaproj, subcluster" in err.value.help
    with pytest.raises(InputError, match=r"sub-clusters \(--subclusters\)"):
        TrainConfig(data=".", out=str(tmp_path), loss="subcluster", n_subclusters=0)


def test_training_with_subclusters_resumes_and_refuses_another_loss(tiny_dataset, tmp_path):
    torch.set_num_threads(1)
    cfg = tiny_config(tiny_dataset, tmp_path, 2)
    cfg.loss, cfg.n_subclusters = "subcluster", 4
    train(cfg, progress=False)
    first = load_checkpoint(tmp_path)
    assert first["step"] == 8 and np.isfinite(first["losses"]).all()
    assert first["heads"]["cls.centres"].shape == (4, 4, 64)
    assert "sub-cluster AdaCos loss (4 centres)" in training_summary(first)
    cfg.epochs = 3
    train(cfg, progress=False)  # resumed: same centres, continues the losses
    second = load_checkpoint(tmp_path)
    assert second["step"] == 12 and second["losses"][:8] == first["losses"]
    assert torch.equal(second["heads"]["cls.centres"], first["heads"]["cls.centres"])
    cfg.loss = "adaproj"
    with pytest.raises(InputError, match="trained with --loss subcluster --subclusters 4"):
        train(cfg, progress=False)
    cfg.loss, cfg.n_subclusters = "subcluster", 8
    with pytest.raises(InputError, match="not --loss subcluster --subclusters 8"):
        train(cfg, progress=False)


def test_cli_names_the_valid_losses(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "edgeasd", "train", "--data", str(tmp_path), "--out",
         str(tmp_path / "run"), "--loss", "arcface"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2
    assert "invalid choice: 'arcface'" in r.stderr and "subcluster" in r.stderr
    r = subprocess.run(
        [sys.executable, "-m", "edgeasd", "train", "--data", str(tmp_path), "--out",
         str(tmp_path / "run"), "--loss", "subcluster", "--subclusters", "0"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert r.returncode == 2
    assert "sub-clusters (--subclusters) must be at least 1, got 0" in r.stderr
