"""Ensembles of embedding models: the distance identity, the ensemble's id, member checks."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from support.onnx_models import machine_sound, make_test_model

from edgeasd.embedding.ensemble import EnsembleEmbedder, combine, load_embedder
from edgeasd.embedding.onnx import Embedder
from edgeasd.errors import InputError, ModelError


def _cosine_distance(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Row-wise 1 - cos(x, y) in float64 (the plain-numpy reference)."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    cos = (x * y).sum(1) / (np.linalg.norm(x, axis=1) * np.linalg.norm(y, axis=1))
    return 1.0 - cos


@st.composite
def _member_pairs(draw):
    """``M`` members' embeddings of two batches of ``b`` windows, dims drawn per member."""
    m = draw(st.integers(1, 4))
    b = draw(st.integers(1, 4))
    elements = st.floats(-1e3, 1e3, width=32, allow_subnormal=False)
    pairs = []
    for _ in range(m):
        d = draw(st.integers(1, 6))
        x = draw(hnp.arrays(np.float32, (b, d), elements=elements))
        y = draw(hnp.arrays(np.float32, (b, d), elements=elements))
        for v in (x, y):  # a zero row has no direction: excluded (documented)
            assume(bool((np.linalg.norm(v.astype(np.float64), axis=1) > 1e-6).all()))
        pairs.append((x, y))
    return pairs


@settings(max_examples=200, deadline=None)
@given(_member_pairs())
def test_ensemble_distance_is_the_mean_member_distance(pairs):
    ex = combine([x for x, _ in pairs])
    ey = combine([y for _, y in pairs])
    assert ex.dtype == np.float32 and ex.shape[1] == sum(x.shape[1] for x, _ in pairs)
    np.testing.assert_allclose(np.linalg.norm(ex.astype(np.float64), axis=1), 1.0, atol=1e-6)
    mean = np.mean([_cosine_distance(x, y) for x, y in pairs], axis=0)
    np.testing.assert_allclose(_cosine_distance(ex, ey), mean, atol=1e-5)
    # the bank's A = (1 - cos) / 2 of unit rows, straight from the dot product
    a = 0.5 * (1.0 - (ex.astype(np.float64) * ey).sum(1))
    np.testing.assert_allclose(a, 0.5 * mean, atol=1e-5)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """Two different 0.5 s, 16 kHz cosine test models (16-d and 8-d) and an odd-one-out set."""
    d = tmp_path_factory.mktemp("ensemble")
    return {
        "a": make_test_model(d / "a.onnx", window_seconds=0.5),
        "b": make_test_model(d / "b.onnx", window_seconds=0.5, dim=8, frame=128),
        "rate": make_test_model(d / "rate.onnx", sample_rate=8000, window_seconds=0.5),
        "window": make_test_model(d / "window.onnx", window_seconds=0.25),
        "euclid": make_test_model(
            d / "euclid.onnx", window_seconds=0.5, metadata={"metric": "euclidean"}
        ),
    }


def test_two_real_models(models):
    a, b = Embedder(models["a"]), Embedder(models["b"])
    ens = EnsembleEmbedder([models["a"], models["b"]], threads=1)
    assert ens.paths == [models["a"], models["b"]] and len(ens.members) == 2
    assert ens.window_samples == 8000 and ens.threads == 1
    info = ens.info
    assert (info.name, info.version, info.dim, info.metric) == ("ensemble", "2x", 24, "cosine")
    assert (info.sample_rate, info.window_seconds) == (16000, 0.5)
    assert info.members == (a.info.id, b.info.id)
    assert info.id.startswith("ensemble-2x:") and info.id not in (a.info.id, b.info.id)
    assert a.info.training_data in info.training_data
    assert json.loads(json.dumps(info.to_dict()))["members"] == list(info.members)

    x = np.stack([machine_sound(0.5, seed=s, anomalous=s == 2) for s in range(3)])
    y = ens.embed(x)
    assert y.shape == (3, 24) and y.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1.0, atol=1e-6)
    ya, yb = a.embed(x), b.embed(x)
    unit = lambda v: v / np.linalg.norm(v, axis=1, keepdims=True)  # noqa: E731
    np.testing.assert_allclose(y[:, :16], unit(ya) / np.sqrt(2), atol=1e-6)
    np.testing.assert_allclose(y[:, 16:], unit(yb) / np.sqrt(2), atol=1e-6)
    mean = 0.5 * (_cosine_distance(ya[:1], ya[1:]) + _cosine_distance(yb[:1], yb[1:]))
    np.testing.assert_allclose(_cosine_distance(y[:1], y[1:]), mean, atol=1e-5)
    assert ens.embed(np.zeros((0, 8000))).shape == (0, 24)
    with pytest.raises(InputError, match="takes 8000"):
        ens.embed(np.zeros((1, 7999), np.float32))


def test_id_depends_on_members_and_their_order(models):
    ab = EnsembleEmbedder([models["a"], models["b"]]).info
    ba = EnsembleEmbedder([models["b"], models["a"]]).info
    assert ab.id != ba.id and ab.members == ba.members[::-1]
    assert EnsembleEmbedder([models["a"], models["b"]]).info == ab  # deterministic


def test_bank_of_an_ensemble_refuses_a_member_and_vice_versa(models):
    from edgeasd.agent.enrollment.bank_lifecycle import check_model, new_bank
    from edgeasd.config import Config

    ens = EnsembleEmbedder([models["a"], models["b"]]).info
    member = Embedder(models["a"]).info
    bank = new_bank(Config().scoring, ens)
    assert bank.dim == 24 and bank.meta["model_id"] == ens.id
    check_model(bank, ens)
    with pytest.raises(ModelError, match="embedded with model"):
        check_model(bank, member)
    with pytest.raises(ModelError, match="embedded with model"):
        check_model(new_bank(Config().scoring, member), ens)


@pytest.mark.parametrize(
    ("odd", "needle"),
    [
        ("rate", "disagree on sample_rate: 16000 Hz vs 8000 Hz"),
        ("window", "disagree on window_seconds: 0.5 s vs 0.25 s"),
        ("euclid", "uses the metric 'euclidean'"),
    ],
)
def test_mismatched_members_are_model_errors(models, odd, needle):
    with pytest.raises(ModelError) as info:
        EnsembleEmbedder([models["a"], models["b"], models[odd]])
    assert needle in info.value.message and str(models[odd]) in info.value.message
    if odd != "euclid":
        assert str(models["a"]) in info.value.message
    assert info.value.help


def test_duplicate_members_are_model_errors(models, tmp_path):
    a = models["a"]
    with pytest.raises(ModelError, match=r"lists model .* twice") as info:
        EnsembleEmbedder([a, models["b"], a])
    assert info.value.help
    link = tmp_path / "link.onnx"
    link.symlink_to(a)
    with pytest.raises(ModelError, match=r"lists model .* twice \(also as .*link\.onnx\)"):
        EnsembleEmbedder([a, link])
    copy = shutil.copy(a, tmp_path / "copy.onnx")
    with pytest.raises(ModelError, match="same file content") as info:
        EnsembleEmbedder([a, copy])
    assert str(a) in info.value.message and str(copy) in info.value.message


def test_load_embedder_one_or_many(models):
    a = models["a"]
    for given_paths in (a, str(a), [a], (str(a),)):
        single = load_embedder(given_paths, threads=1)
        assert type(single) is Embedder and single.info == Embedder(a).info
    assert isinstance(load_embedder([a, models["b"]]), EnsembleEmbedder)
    with pytest.raises(InputError, match="no model file"):
        load_embedder([])
    with pytest.raises(InputError, match="at least two"):
        EnsembleEmbedder([a])
    with pytest.raises(ModelError, match="cannot read model file"):
        load_embedder([a, a.parent / "absent.onnx"])
