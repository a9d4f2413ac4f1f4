"""AdaProj: subspace cosines against a numpy reference, adaptive scale, learning."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeasd.errors import InputError
from edgeasd.train.adaproj import AdaProj


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10_000), st.integers(2, 5), st.integers(1, 6))
def test_cosines_equal_projection_norm_for_orthonormal_bases(seed, n_classes, m):
    dim = 12
    rng = np.random.default_rng(seed)
    loss = AdaProj(dim, n_classes, subspace_dim=m)
    bases = [np.linalg.qr(rng.standard_normal((dim, m)))[0] for _ in range(n_classes)]
    with torch.no_grad():
        loss.weight.copy_(torch.from_numpy(np.stack([b.T for b in bases])).float())
    x = rng.standard_normal((7, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    got = loss.cosines(torch.from_numpy(x).float()).detach().numpy()
    ref = np.stack([np.linalg.norm(x @ b, axis=1) for b in bases], axis=1)
    np.testing.assert_allclose(got, ref, atol=1e-5)


def test_needs_two_classes():
    with pytest.raises(InputError):
        AdaProj(8, 1)


def test_zero_weight_samples_do_not_contribute():
    torch.manual_seed(0)
    loss = AdaProj(16, 3).eval()
    x = torch.randn(4, 16)
    y = torch.eye(3)[[0, 1, 2, 0]]
    w = torch.tensor([1.0, 1.0, 0.0, 0.0])
    a = loss(x, y, w)
    x2 = x.clone()
    x2[2:] = torch.randn(2, 16)  # changing ignored samples changes nothing
    assert torch.allclose(a, loss(x2, y, w))


def test_training_separates_classes_and_adapts_scale():
    torch.manual_seed(0)
    centers = torch.randn(4, 16)
    labels = torch.arange(4).repeat(32)
    x = centers[labels] + 0.3 * torch.randn(len(labels), 16)
    loss = AdaProj(16, 4, subspace_dim=2)
    opt = torch.optim.Adam(loss.parameters(), lr=0.05)
    y, w = torch.eye(4)[labels], torch.ones(len(labels))
    first = float(loss(x, y, w).detach())
    s0 = float(loss.scale)
    for _ in range(100):
        opt.zero_grad()
        out = loss(x, y, w)
        out.backward()
        opt.step()
    assert float(out.detach()) < 0.5 * first
    assert float(loss.scale) != s0
    assert (loss.cosines(x).argmax(1) == labels).float().mean() > 0.95
