"""The shipped models: default choice, metadata contract, and what they can tell apart."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from edgeasd.embedding.models import (
    DEFAULT_ORDER,
    DIRECTACT_FP32_MODEL,
    DIRECTACT_MODEL,
    MODELS_DIR,
    SPECTRAL_MODEL,
    SPECTRAL_V2_FP32_MODEL,
    SPECTRAL_V2_MODEL,
    SPECTRAL_V3_FP32_MODEL,
    SPECTRAL_V3_MODEL,
    default_model_path,
    spectral_model_path,
)
from edgeasd.embedding.onnx import REQUIRED_METADATA

METADATA_KEYS = REQUIRED_METADATA
SHIPPED = [
    MODELS_DIR / name
    for name in dict.fromkeys(
        (
            *DEFAULT_ORDER,
            SPECTRAL_V2_MODEL,
            SPECTRAL_V3_MODEL,
            DIRECTACT_FP32_MODEL,
            SPECTRAL_V2_FP32_MODEL,
            SPECTRAL_V3_FP32_MODEL,
        )
    )
    if (MODELS_DIR / name).is_file()
]
UNSEEN = "compressor"  # the machine type the shipped Direct-ACT never saw in training


def auc(normal: np.ndarray, anomalous: np.ndarray) -> float:
    """Probability that an anomalous score exceeds a normal one (ties count half)."""
    diff = anomalous[:, None] - normal[None, :]
    return float((diff > 0).mean() + 0.5 * (diff == 0).mean())


def test_default_model_is_the_first_shipped_one_in_preference_order():
    assert SHIPPED, "no shipped model in edgeasd/embedding/models"
    present = [MODELS_DIR / n for n in DEFAULT_ORDER if (MODELS_DIR / n).is_file()]
    assert default_model_path() == present[0]
    assert spectral_model_path().name == SPECTRAL_MODEL


def test_default_is_spectral_v1_and_v2_v3_are_opt_in():
    """spectral-v1 stays the default: v2 misses issue 18's bar held out by machine type, and
    v3, which passes it, halves the simulated detection after a condition change
    (MODEL_CARD.md)."""
    assert default_model_path().name == SPECTRAL_MODEL
    assert SPECTRAL_V2_MODEL not in DEFAULT_ORDER and SPECTRAL_V3_MODEL not in DEFAULT_ORDER


@pytest.mark.parametrize(
    ("name", "version", "matrices"),
    [(SPECTRAL_V2_MODEL, "v2-int8", 4), (SPECTRAL_V3_MODEL, "v3-int8", 1)],
)
def test_spectral_int8_models_store_their_matrices_as_int8(name, version, matrices):
    """spectral-v2 and v3 int8 are QDQ models: every matrix product reads int8 weights."""
    model = onnx.load(str(MODELS_DIR / name))
    meta = {p.key: p.value for p in model.metadata_props}
    assert (meta["model_name"], meta["model_version"]) == ("edgeasd-spectral", version)
    int8 = {t.name for t in model.graph.initializer if t.data_type == onnx.TensorProto.INT8}
    dq = [n for n in model.graph.node if n.op_type == "DequantizeLinear"]
    assert len(dq) == matrices and {n.input[0] for n in dq} <= int8
    # every MatMul reads its constant matrix through a DequantizeLinear: no float matrix left
    floats = {t.name for t in model.graph.initializer if t.data_type == onnx.TensorProto.FLOAT}
    dq_out = {n.output[0] for n in dq}
    for node in (n for n in model.graph.node if n.op_type == "MatMul"):
        assert not floats & set(node.input) and dq_out & set(node.input), node.name


def test_models_package_does_not_import_torch():
    import subprocess
    import sys

    code = "import sys, edgeasd.embedding.models; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_model_follows_the_contract(path):
    model = onnx.load(str(path))
    meta = {p.key: p.value for p in model.metadata_props}
    assert set(METADATA_KEYS) <= set(meta)
    assert meta["metric"] == "cosine"
    # The deployed files are "a few MB"; the fp32 original is shipped for re-quantization
    # on a user's own calibration clips (edgeasd quantize) and for the int8 benchmark.
    limit = 16 if path.name == DIRECTACT_FP32_MODEL else 8
    assert path.stat().st_size < limit * 2**20
    (inp,) = model.graph.input
    assert inp.name == "waveform"
    dims = inp.type.tensor_type.shape.dim
    assert dims[1].dim_value == round(int(meta["sample_rate"]) * float(meta["window_seconds"]))
    assert [o.name for o in model.graph.output] == ["embedding"]


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_model_embeds_unit_vectors(path):
    embed = pytest.importorskip("edgeasd.embedding.onnx")
    e = embed.Embedder(path)
    x = (0.1 * np.random.default_rng(0).standard_normal((3, e.window_samples))).astype(np.float32)
    y = e.embed(x)
    assert y.shape == (3, e.info.dim) and np.isfinite(y).all()
    np.testing.assert_allclose(np.linalg.norm(y, axis=1), 1.0, atol=1e-3)
    np.testing.assert_allclose(e.embed(x), y, atol=1e-6)  # deterministic


@pytest.fixture(scope="module")
def unseen_clips():
    """Normal references, normal tests and clearly faulty clips of the unseen type."""
    synth = pytest.importorskip("edgeasd.synth")
    spec = synth.MACHINE_TYPES[UNSEEN]
    attrs = {k: a.source[0] for k, a in spec.attributes.items()}

    def clips(seeds, **kw):
        return np.stack(
            [synth.render(UNSEEN, 10.0, 16000, seed=s, attributes=attrs, **kw) for s in seeds]
        )

    refs, normal = clips(range(8)), clips(range(100, 104))
    faulty = np.concatenate(
        [clips(range(200, 202), anomaly=kind, severity=1.5) for kind in spec.anomalies]
    )
    return refs, normal, faulty


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_model_separates_faults_of_an_unseen_machine_type(path, unseen_clips):
    embed = pytest.importorskip("edgeasd.embedding.onnx")
    e = embed.Embedder(path)
    assert UNSEEN not in e.info.training_data
    refs, normal, faulty = (e.embed(x) for x in unseen_clips)

    def score(q):
        return 1.0 - (q @ refs.T).max(axis=1)  # nearest-neighbour cosine distance

    assert auc(score(normal), score(faulty)) >= 0.9


def test_spectral_model_clusters_real_machines(shared_data):
    """Real DCASE 2023 clips: same-type pairs are more similar than different-type pairs."""
    embed = pytest.importorskip("edgeasd.embedding.onnx")
    from edgeasd.audio.io import read_audio
    from edgeasd.train.clustering import clustering

    e = embed.Embedder(spectral_model_path())
    files = sorted((shared_data / "dcase2023-t2").glob("*/*/*.wav"))
    assert len(files) >= 14
    n = e.window_samples
    x = np.stack([np.resize(read_audio(f, 16000).samples, n) for f in files])
    types = np.array([f.parent.parent.name for f in files])
    c = clustering(e.embed(x), types)
    assert c.margin > 0.05
    assert c.nn_accuracy > 2.0 / c.n_types  # far above chance


def test_shipped_int8_model_matches_its_fp32_original():
    """The deployed int8 Direct-ACT embeds like its fp32 original, as the agent runs it.

    Run through the Embedder, i.e. with onnxruntime's fused int8 kernels for this CPU:
    on x86-64 CPUs without VNNI an int8 file with 8-bit weights saturated there (mean
    cosine 0.954 for the previous file on an AVX2-only EPYC, 0.99936 on a VNNI Xeon);
    the shipped file has 7-bit weights (see ``edgeasd.train.quantize``). Goal of
    MODEL_CARD.md: mean cosine >= 0.999 on held-out clips of the unseen type.
    """
    embed = pytest.importorskip("edgeasd.embedding.onnx")
    synth = pytest.importorskip("edgeasd.synth")
    int8, fp32 = MODELS_DIR / DIRECTACT_MODEL, MODELS_DIR / DIRECTACT_FP32_MODEL
    if not (int8.is_file() and fp32.is_file()):
        pytest.skip("the Direct-ACT files are not shipped in this build")
    spec = synth.MACHINE_TYPES[UNSEEN]
    attrs = {k: a.source[0] for k, a in spec.attributes.items()}
    x = np.stack(
        [synth.render(UNSEEN, 10.0, 16000, seed=s, attributes=attrs) for s in range(300, 316)]
    ).astype(np.float32)
    cos = (embed.Embedder(int8).embed(x) * embed.Embedder(fp32).embed(x)).sum(axis=1)
    assert cos.mean() >= 0.999 and cos.min() >= 0.998


def _windows_for_parity():
    """Synthetic windows, clicks, silence, and every 8th real clip when the shared data is there."""
    import os
    from pathlib import Path

    from edgeasd.audio.io import read_audio

    repo = Path(__file__).resolve().parents[2]
    shared = Path(os.environ.get("EDGEASD_SHARED_DATA", repo.parent / "shared" / "data"))

    synth = pytest.importorskip("edgeasd.synth")
    spec = synth.MACHINE_TYPES[UNSEEN]
    attrs = {k: a.source[0] for k, a in spec.attributes.items()}
    x = [synth.render(UNSEEN, 10.0, 16000, seed=s, attributes=attrs) for s in range(300, 308)]
    x.append(0.5 * np.sign(np.sin(np.arange(160000) / 16000 * 2 * np.pi * 3.0)))  # clicks
    x.append(np.zeros(160000))  # digital silence: the log floor
    clips = sorted((shared / "real-clips").glob("*/*/*.wav"))[::8]
    x += [np.resize(read_audio(f, 16000).samples, 160000) for f in clips]
    return np.stack(x).astype(np.float32)


@pytest.mark.parametrize(
    ("int8", "fp32"),
    [(SPECTRAL_V2_MODEL, SPECTRAL_V2_FP32_MODEL), (SPECTRAL_V3_MODEL, SPECTRAL_V3_FP32_MODEL)],
)
def test_spectral_int8_model_matches_its_fp32_original(int8, fp32):
    """spectral-v2 and v3 int8 vs fp32, as the agent runs it and computed exactly (QDQ reference).

    The int8 file computes in float from int8-stored matrices (no integer kernels, so no
    VNNI-dependent saturation); fused (the Embedder's optimized session, this CPU's
    kernels) and unfused (``ORT_DISABLE_ALL``: every DequantizeLinear evaluated as written)
    must both stay within the goal of MODEL_CARD.md: mean cosine >= 0.999, min >= 0.998.
    """
    import onnxruntime as ort

    from edgeasd.embedding.onnx import Embedder

    x = _windows_for_parity()
    ref = Embedder(MODELS_DIR / fp32).embed(x)
    opts = ort.SessionOptions()
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    exact = ort.InferenceSession(str(MODELS_DIR / int8), opts)
    for y in (
        Embedder(MODELS_DIR / int8).embed(x),
        exact.run(None, {"waveform": x})[0],
    ):
        cos = (y * ref).sum(axis=1)
        assert cos.mean() >= 0.999 and cos.min() >= 0.998, (cos.mean(), cos.min())


def test_shipped_model_for_finds_the_model_that_built_a_bank():
    from edgeasd.embedding.models import shipped_model_for, shipped_models
    from edgeasd.embedding.onnx import file_sha256, read_model_info

    models = shipped_models()
    assert models[0] == default_model_path() and len(models) == len(set(models)) >= 2
    for path in models:
        # the id as a bank records it, built here from the file itself
        meta = {
            p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props
        }
        model_id = f"{meta['model_name']}-{meta['model_version']}:{file_sha256(path)[:16]}"
        assert shipped_model_for(model_id) == path
    for older in read_model_info(spectral_model_path()).compatible:
        assert shipped_model_for(older) == spectral_model_path()
    assert shipped_model_for("edgeasd-gone-v0:0123456789abcdef") is None
