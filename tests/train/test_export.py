"""Export helpers: batch-norm folding and the choice of what int8 quantizes."""

from __future__ import annotations

import numpy as np
import onnx
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from edgeasd.train.directact import DirectACT, DirectACTConfig
from edgeasd.train.export import fold_batchnorms
from edgeasd.train.quantize import float_nodes, one_d_convs


def _randomize_norms(module: torch.nn.Module, rng: np.random.Generator) -> None:
    """Give every batch norm non-trivial running statistics and affine parameters."""
    with torch.no_grad():
        for m in module.modules():
            if isinstance(m, torch.nn.BatchNorm1d):
                n = m.num_features
                m.running_mean.copy_(torch.from_numpy(rng.normal(0, 2, n)))
                m.running_var.copy_(torch.from_numpy(rng.uniform(1e-3, 5, n)))
                m.weight.copy_(torch.from_numpy(rng.normal(1, 0.5, n)))
                m.bias.copy_(torch.from_numpy(rng.normal(0, 1, n)))


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**31), st.integers(1, 6), st.integers(1, 6), st.booleans())
def test_folding_keeps_the_eval_function(seed, d_in, d_out, bias):
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    net = torch.nn.Sequential(
        torch.nn.BatchNorm1d(d_in),  # before a dense layer: left alone
        torch.nn.Linear(d_in, d_out, bias=bias),
        torch.nn.BatchNorm1d(d_out),  # after it: folded
        torch.nn.ReLU(),
        torch.nn.Linear(d_out, 3),
    )
    _randomize_norms(net, rng)
    folded = fold_batchnorms(net)
    kinds = [type(m).__name__ for m in folded]
    assert kinds == ["BatchNorm1d", "Linear", "ReLU", "Linear"]
    assert len(net) == 5  # the original is untouched
    x = torch.from_numpy(rng.normal(0, 3, (7, d_in)).astype(np.float32))
    with torch.no_grad():
        ref, got = net.eval()(x), folded(x)
    np.testing.assert_allclose(got.numpy(), ref.numpy(), rtol=1e-4, atol=1e-4)


def test_folding_a_directact_network_keeps_its_embedding():
    torch.manual_seed(0)
    cfg = DirectACTConfig(window_seconds=2.0, width=2, branch_dim=16)
    net = DirectACT(cfg)
    _randomize_norms(net, np.random.default_rng(1))
    folded = fold_batchnorms(net)
    before = sum(isinstance(m, torch.nn.BatchNorm1d) for m in net.modules())
    after = sum(isinstance(m, torch.nn.BatchNorm1d) for m in folded.modules())
    assert after < before
    x = 0.1 * torch.randn(3, cfg.window_samples)
    with torch.no_grad():
        cos = (net.eval()(x) * folded(x)).sum(dim=1)
    assert cos.min() > 0.99999


def test_int8_keeps_dense_layers_and_1d_convs_in_float(tmp_path):
    from edgeasd.train.export import export_onnx
    from edgeasd.train.metadata import ModelMetadata

    torch.manual_seed(0)
    cfg = DirectACTConfig(window_seconds=2.0, width=2, branch_dim=16)
    meta = ModelMetadata(
        sample_rate=16000,
        window_seconds=2.0,
        embedding_dim=32,
        model_name="t",
        model_version="v",
        training_data="none",
    )
    model = onnx.load(str(export_onnx(DirectACT(cfg), tmp_path / "m.onnx", meta)))
    shapes = {t.name: len(t.dims) for t in model.graph.initializer}
    convs = {n.name: shapes.get(n.input[1]) for n in model.graph.node if n.op_type == "Conv"}
    assert set(one_d_convs(model)) == {k for k, v in convs.items() if v == 3}
    assert len(one_d_convs(model)) == 3  # the spectrum branch
    kept = set(float_nodes(model))
    assert set(one_d_convs(model)) <= kept
    quantized = [k for k, v in convs.items() if v == 4 and k not in kept]
    assert len(quantized) >= 16  # the ResNet's convolutions (all but the stem)
    ops = {n.name: n.op_type for n in model.graph.node}
    assert {ops[k] for k in kept} >= {"MatMul", "Conv"}  # front-end products, 1-D convs
