"""A short CPU fine-tune of the shipped Direct-ACT on the bank's own enrollment audio (issue 18).

Does adapting the network on the machine itself pay? The protocol is that of
``edgeasd eval-real`` (:mod:`edgeasd.evaluation.real`): per machine type of the folder, the
normals (in the evaluation's order) alternate between the bank (``normals[f::2]``) and the
scored set, every anomalous recording is scored, two folds, AUC and pAUC by the official DCASE
metric, fold means. For each fold the fine-tune sees **only that fold's enrolled normal
recordings**: what a device holds once it has enrolled (its bank's kept audio). Nothing scored
is trained on; no anomalous audio is used.

The fine-tune starts from the shipped fp32 Direct-ACT
(:func:`edgeasd.train.from_onnx.directact_from_onnx`, which reproduces the ONNX embeddings) and
trains the whole network with the training recipe's loss (:func:`edgeasd.train.trainer.
training_loss`: AdaProj class loss + feature exchange + mixup, spectrogram branch on random
3 s crops), fresh heads, Adam (network ``lr``, heads 1e-3), batch norms kept in eval mode (their
statistics are the shipped ones; a bank of 2-42 recordings cannot estimate them), a fixed
number of steps on one thread (the CPU time per fold is measured and printed). Classes
(:data:`VARIANTS`):

* ``id``: the enrolled recordings' machine ids (one recording per class when the fold has a
  single id);
* ``rec``: each enrolled recording its own class;
* ``rec-lr3``: as ``rec`` with the network's learning rate 1e-3 instead of 1e-4.

The variant was chosen on **one machine type's first fold only** (``--select``, fan fold 0:
the type with the most recordings) and then applied unchanged to all types; the chosen one is
:data:`CHOSEN`. The baselines are computed in the same run on the same folds: the shipped
Direct-ACT fp32 (the same network, not fine-tuned), its int8 file and ``spectral-v1`` (the
default).

Run (one thread; about 30 minutes for the six types of ``real-clips``)::

    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python benchmarks/real_finetune.py --select
    OMP_NUM_THREADS=1 NUMBA_NUM_THREADS=1 python benchmarks/real_finetune.py --out ft.json

Each fold's fine-tuned network is scored in fp32 with torch (the same function as its fp32
ONNX export, ``tests/train/test_from_onnx.py``) and, unless ``--no-int8``, as an int8 file:
exported and quantized as ``edgeasd export`` does, calibrated on the bank's own windows
(about 10 CPU seconds a fold, printed).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from edgeasd.audio.io import read_audio
from edgeasd.config import Config
from edgeasd.embedding.ensemble import load_embedder
from edgeasd.embedding.models import MODELS_DIR, directact_model_path, spectral_model_path
from edgeasd.evaluation.labelled import LabelledClip, by_key, scan_labelled
from edgeasd.evaluation.metrics import roc_auc
from edgeasd.evaluation.real import (
    FOLDS,
    MAX_FPR,
    _fold,
    _Model,
    clip_windows_of,
    evaluate_embeddings,
)
from edgeasd.train.export import export_onnx
from edgeasd.train.from_onnx import directact_from_onnx
from edgeasd.train.metadata import ModelMetadata
from edgeasd.train.quantize import quantize_int8
from edgeasd.train.trainer import Heads, training_loss

sys.path.insert(0, str(Path(__file__).resolve().parent))
from real_candidates import DEFAULT_FOLDER, SR, WINDOW_SECONDS  # the same clips and windows

FP32 = MODELS_DIR / "edgeasd-directact-v2.onnx"


@dataclass(frozen=True)
class Variant:
    """How the enrolled recordings become classes, and the network's learning rate."""

    classes: str  # "id" or "rec"
    lr: float = 1e-4


VARIANTS = {"id": Variant("id"), "rec": Variant("rec"), "rec-lr3": Variant("rec", 1e-3)}
#: Chosen by ``--select`` on fan fold 0 (43 enrolled, 99 scored), fp32 AUC: no fine-tune
#: 0.594, ``id`` 0.567, ``rec`` 0.581, ``rec-lr3`` 0.563: none beat the shipped network there;
#: ``rec`` lost least.
CHOSEN = "rec"
#: Steps per fold: about 2 CPU minutes on one thread of the development machine (0.2 s a step).
STEPS = 600
BATCH = 8
CROP_SECONDS = 3.0
HEAD_LR = 1e-3


def load_windows(clips: list[LabelledClip], config: Config) -> list[np.ndarray]:
    """Each recording's usable 10 s windows as the agent cuts them, ``(windows, samples)``."""
    out = []
    for c in clips:
        w = clip_windows_of(read_audio(c.path, SR).samples, SR, WINDOW_SECONDS, config)
        out.append(np.stack(w) if w else np.zeros((0, round(SR * WINDOW_SECONDS)), np.float32))
    return out


def torch_embed(net: torch.nn.Module, windows: list[np.ndarray]) -> list[np.ndarray]:
    """Embeddings of every recording's windows with ``net`` in eval mode."""
    net.eval()
    out = []
    with torch.no_grad():
        for w in windows:
            out.append(net(torch.from_numpy(w)).numpy() if len(w) else np.zeros((0, 512)))
    return out


def labels_of(clips: list[LabelledClip], variant: Variant) -> np.ndarray:
    """Class index of each enrolled recording (module docstring), shape (n,)."""
    keys = [c.machine_id for c in clips] if variant.classes == "id" else []
    if len(set(keys)) < 2:
        keys = [str(c.path) for c in clips]
    index = {k: i for i, k in enumerate(sorted(set(keys)))}
    return np.array([index[k] for k in keys], dtype=np.int64)


def finetune(
    base: torch.nn.Module,
    windows: list[np.ndarray],
    labels: np.ndarray,
    variant: Variant,
    steps: int,
    seed: int = 0,
) -> tuple[torch.nn.Module, float, float]:
    """A fine-tuned copy of ``base``; its CPU seconds and final loss.

    ``windows``: the enrolled recordings' windows; each step draws ``BATCH`` of them at random.
    """
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    gen = torch.Generator().manual_seed(seed)
    pool = np.concatenate(windows)
    pool_labels = np.concatenate([np.full(len(w), y) for w, y in zip(windows, labels, strict=True)])
    heads = Heads(base.cfg, int(labels.max()) + 1, subspace_dim=32)
    heads.net = copy.deepcopy(base)
    opt = torch.optim.Adam(
        [
            {"params": heads.net.parameters(), "lr": variant.lr},
            {"params": [*heads.cls.parameters(), *heads.featex.parameters()], "lr": HEAD_LR},
        ]
    )
    heads.train()
    heads.net.eval()  # batch norms keep the shipped statistics
    crop = round(CROP_SECONDS * SR)
    started, loss = time.process_time(), math.nan
    for _ in range(steps):
        idx = rng.integers(0, len(pool), BATCH)
        value, _parts = training_loss(
            heads,
            torch.from_numpy(pool[idx]),
            torch.from_numpy(pool_labels[idx]),
            gen,
            crop_samples=crop,
        )
        opt.zero_grad()
        value.backward()
        opt.step()
        loss = float(value.detach())
    return heads.net.eval(), time.process_time() - started, loss


def int8_embed(
    net: torch.nn.Module, calibration: np.ndarray, windows: list[np.ndarray], tmp: Path
) -> tuple[list[np.ndarray], float]:
    """Embeddings with the int8 file of ``net`` (exported and quantized as ``edgeasd export``
    does, calibrated on ``calibration``: the bank's own windows); the CPU seconds it took."""
    started = time.process_time()
    meta = ModelMetadata(
        sample_rate=SR,
        window_seconds=WINDOW_SECONDS,
        embedding_dim=512,
        model_name="edgeasd-directact",
        model_version="v2-ft",
        training_data="shipped v2 fine-tuned on one bank's enrolled recordings",
    )
    fp32 = export_onnx(net, tmp / "ft.onnx", meta)
    int8 = quantize_int8(fp32, tmp / "ft-int8.onnx", calibration, meta)
    seconds = time.process_time() - started
    emb = load_embedder(int8, 1)
    return [emb.embed(w) if len(w) else np.zeros((0, 512)) for w in windows], seconds


def finetuned_type(
    members: list[LabelledClip],
    windows: list[np.ndarray],
    base: torch.nn.Module,
    variant: Variant,
    steps: int,
    config: Config,
    folds: range,
    int8: bool,
    seed: int = 0,
) -> dict[str, dict]:
    """AUC / pAUC (fold means) of one machine type with a network fine-tuned per fold.

    Returns ``{"fp32": figures, "int8": figures}`` (``"int8"`` only with ``int8``).
    """
    normal = [i for i, c in enumerate(members) if c.label == "normal"]
    anomaly = [i for i, c in enumerate(members) if c.label == "anomaly"]
    model = _Model(512, "cosine", "directact-v2-finetuned", "directact-v2-finetuned")
    out: dict[str, dict] = {}

    def record(kind: str, scores: np.ndarray, y: np.ndarray, **extra: float) -> None:
        r = out.setdefault(kind, {"fold_auc": [], "fold_pauc": []})
        r["fold_auc"].append(roc_auc(y, scores))
        r["fold_pauc"].append(roc_auc(y, scores, max_fpr=MAX_FPR))
        for k, v in extra.items():
            r.setdefault(k, []).append(v)
        r["auc"], r["pauc"] = float(np.mean(r["fold_auc"])), float(np.mean(r["fold_pauc"]))

    for f in folds:
        enrolled, scored = normal[f::2], normal[1 - f :: 2] + anomaly
        labels = labels_of([members[i] for i in enrolled], variant)
        bank_windows = [windows[i] for i in enrolled]
        net, seconds, loss = finetune(base, bank_windows, labels, variant, steps, seed)
        scores, y, _state = _fold(
            members, torch_embed(net, windows), enrolled, scored, model, config
        )
        record("fp32", scores, y, cpu_minutes=seconds / 60, final_loss=loss)
        line = (
            f"  {members[0].machine} fold {f}: {len(enrolled)} enrolled, "
            f"{labels.max() + 1} classes, {steps} steps in {seconds:.0f} CPU s, "
            f"loss {loss:.3f}, AUC {out['fp32']['fold_auc'][-1]:.3f}"
        )
        if int8:
            with tempfile.TemporaryDirectory() as tmp:
                embs, q_seconds = int8_embed(net, np.concatenate(bank_windows), windows, Path(tmp))
            scores, y, _state = _fold(members, embs, enrolled, scored, model, config)
            record("int8", scores, y, export_cpu_minutes=q_seconds / 60)
            line += f", int8 {out['int8']['fold_auc'][-1]:.3f} (export {q_seconds:.0f} CPU s)"
        print(line, file=sys.stderr, flush=True)
    return out


def baselines(clips: list[LabelledClip], windows: list[np.ndarray], config: Config) -> dict:
    """Per-type AUC / pAUC of the shipped models on the same folds."""
    out = {}
    for name, path in (
        ("spectral-v1", spectral_model_path()),
        ("directact-v2-int8", directact_model_path()),
        ("directact-v2 (fp32)", FP32),
    ):
        emb = load_embedder(path, 1)
        embs = [emb.embed(w) if len(w) else np.zeros((0, emb.info.dim)) for w in windows]
        report = evaluate_embeddings(clips, embs, name, config=config, levels=("type",))
        out[name] = {g.machine: {"auc": g.auc, "pauc": g.pauc} for g in report.level("type")}
    return out


def table(results: dict[str, dict[str, dict]], types: list[str]) -> str:
    """Markdown: one row per model, AUC / pAUC per type and the mean."""
    rows = [
        "| model | " + " | ".join(types) + " | mean |",
        "|---|" + "---:|" * (len(types) + 1),
    ]
    for name, per in results.items():
        cells = [f"{per[t]['auc']:.3f} / {per[t]['pauc']:.3f}" if t in per else "-" for t in types]
        got = [t for t in types if t in per]
        auc = np.mean([per[t]["auc"] for t in got])
        pauc = np.mean([per[t]["pauc"] for t in got])
        rows.append(f"| {name} | " + " | ".join(cells) + f" | **{auc:.3f}** / {pauc:.3f} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    """Parse the arguments, run the baselines and the fine-tunes, print the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("folder", nargs="?", default=str(DEFAULT_FOLDER))
    ap.add_argument("--select", action="store_true", help="every variant on fan fold 0 only")
    ap.add_argument("--variant", default=CHOSEN, choices=sorted(VARIANTS))
    ap.add_argument("--steps", type=int, default=STEPS)
    ap.add_argument("--types", nargs="*", help="only these machine types")
    ap.add_argument("--out", help="write the figures as JSON here")
    ap.add_argument("--seed", type=int, default=0, help="seed of the heads and batches")
    ap.add_argument("--no-int8", action="store_true", help="skip the int8 export of each fold")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    config = Config()
    clips = scan_labelled(args.folder)
    groups = by_key(clips, "type")
    if args.select:
        groups, variants, folds = {("fan",): groups[("fan",)]}, list(VARIANTS), range(1)
    else:
        variants, folds = [args.variant], range(FOLDS)
    if args.types:
        groups = {k: v for k, v in groups.items() if k[0] in args.types}
    kept = [c for members in groups.values() for c in members]
    windows = load_windows(kept, config)
    win = {id(c): w for c, w in zip(kept, windows, strict=True)}
    results = {} if args.select else baselines(kept, windows, config)
    base = directact_from_onnx(FP32)
    cpu: dict[str, list[float]] = {}
    for v in variants:
        name = f"directact-v2 fine-tuned ({v}, {args.steps} steps, seed {args.seed})"
        for key, members in groups.items():
            r = finetuned_type(
                members,
                [win[id(c)] for c in members],
                base,
                VARIANTS[v],
                args.steps,
                config,
                folds,
                int8=not (args.no_int8 or args.select),
                seed=args.seed,
            )
            for kind, figures in r.items():
                results.setdefault(f"{name}, {kind}", {})[key[0]] = figures
            cpu.setdefault(v, []).extend(r["fp32"]["cpu_minutes"])
    types = [k[0] for k in groups]
    print(table(results, types))
    for v, minutes in cpu.items():
        print(
            f"\n{v}: CPU minutes per fold (one thread) {min(minutes):.1f}-{max(minutes):.1f}, "
            f"mean {np.mean(minutes):.1f}"
        )
    if args.out:
        Path(args.out).write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
