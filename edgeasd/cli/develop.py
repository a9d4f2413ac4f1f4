"""Developer commands: ``synth`` (simulated DCASE-layout corpus) and, from the training
package, ``train``, ``export`` and ``quantize``.

The CLI is thin: it parses arguments and calls :func:`edgeasd.synth.write_dataset`
(and the training library), nothing more.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from edgeasd.errors import EdgeasdError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the model command group's subcommands."""
    _register_synth(subparsers)
    _register_training(subparsers)


def _register_synth(subparsers: argparse._SubParsersAction) -> None:
    # the simulator (numpy, scipy) is imported only when the command runs
    p = subparsers.add_parser(
        "synth",
        help="write a simulated machine-sound dataset in the DCASE layout",
        description=(
            "Render simulated machine sounds (normal and anomalous, source and target "
            "domain) into DIR/<machine>/{train,test}/section_XX_..._.wav with a "
            "manifest.json. Deterministic by --seed."
        ),
    )
    p.add_argument("--out", type=Path, metavar="DIR", help="output folder (required)")
    p.add_argument("--list", action="store_true", help="list the machine types and exit")
    p.add_argument(
        "--machines", nargs="+", metavar="TYPE", help="machine types (default: all; see --list)"
    )
    p.add_argument(
        "--sections",
        nargs="+",
        type=int,
        default=[0],
        metavar="N",
        help="section numbers (default: 0)",
    )
    p.add_argument(
        "--n-source-train",
        type=int,
        default=990,
        metavar="N",
        help="source-domain training clips per section (default: 990)",
    )
    p.add_argument(
        "--n-target-train",
        type=int,
        default=10,
        metavar="N",
        help="target-domain training clips per section (default: 10)",
    )
    p.add_argument(
        "--n-test",
        type=int,
        default=50,
        metavar="N",
        help="test clips per domain and label (default: 50)",
    )
    p.add_argument(
        "--seconds", type=float, default=10.0, metavar="S", help="clip length (default: 10)"
    )
    p.add_argument(
        "--sample-rate", type=int, default=16000, metavar="HZ", help="(default: 16000 Hz)"
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    noise = p.add_mutually_exclusive_group()
    noise.add_argument(
        "--snr-db",
        type=float,
        metavar="X",
        help="machine-to-background ratio in dB (default: 6)",
    )
    noise.add_argument(
        "--no-background", action="store_true", help="render the machines without factory noise"
    )
    p.add_argument(
        "--severity",
        type=float,
        nargs=2,
        default=(0.1, 1.0),
        metavar=("LOW", "HIGH"),
        help="range of anomaly severities, 0 (none) .. 1 (obvious) .. 3 (default: 0.1 1.0)",
    )
    p.add_argument(
        "--workers", type=int, default=1, metavar="N", help="parallel processes (default: 1)"
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--resume", action="store_true", help="keep existing files, render only missing ones"
    )
    p.set_defaults(func=run_synth)


def run_synth(args: argparse.Namespace) -> int:
    """``edgeasd synth``: write the dataset and print a one-line summary."""
    from edgeasd.errors import InputError
    from edgeasd.synth import DEFAULT_SNR_DB, MACHINE_TYPES, write_dataset

    if args.list:
        for name, spec in MACHINE_TYPES.items():
            print(f"{name}: {spec.description}")
            for attr, a in spec.attributes.items():
                src, tgt = ",".join(a.source), ",".join(a.target)
                print(f"  {attr} ({a.description}): source {src}; target {tgt}")
            print("  anomalies: " + ", ".join(spec.anomalies))
        return 0
    if args.out is None:
        raise InputError("edgeasd synth needs --out DIR", help="e.g. edgeasd synth --out data/sim")

    if args.no_background:
        snr_db = None
    else:
        snr_db = DEFAULT_SNR_DB if args.snr_db is None else args.snr_db
    manifest = write_dataset(
        args.out,
        machines=args.machines,
        sections=args.sections,
        n_source_train=args.n_source_train,
        n_target_train=args.n_target_train,
        n_test=args.n_test,
        seconds=args.seconds,
        sample_rate=args.sample_rate,
        seed=args.seed,
        snr_db=snr_db,
        workers=args.workers,
        progress=not args.quiet,
        severity=tuple(args.severity),
        resume=args.resume,
    )
    machines = ", ".join(manifest["machines"])
    print(f"wrote {len(manifest['files'])} clips ({machines}) to {args.out}")
    return 0


# ------------------------------------- train, export, quantize (torch imported lazily)


def _require_torch() -> None:
    """Raise a clear error when the optional training extra is missing."""
    try:
        import onnxscript  # noqa: F401
        import torch  # noqa: F401
    except ModuleNotFoundError as exc:
        raise EdgeasdError(
            f"training needs the optional 'train' extra ({exc.name} is not installed)",
            help="pip install 'edgeasd[train]' (CPU torch is enough)",
        ) from exc


def _register_training(subparsers: argparse._SubParsersAction) -> None:
    """Add ``train``, ``export`` and ``quantize``."""
    t = subparsers.add_parser(
        "train",
        help="train a Direct-ACT embedding model on a DCASE-layout dataset",
        description="Train Direct-ACT (AdaProj + feature exchange + mixup) on the train/ clips "
        "of a DCASE-layout dataset. Classes are machine type x section x attributes from the "
        "file names. A checkpoint in --out is resumed automatically.",
    )
    t.add_argument("--data", type=Path, required=True, metavar="DIR", help="dataset root")
    t.add_argument("--out", type=Path, required=True, metavar="RUN_DIR", help="run folder")
    t.add_argument("--machines", nargs="+", metavar="TYPE", help="only these machine types")
    t.add_argument(
        "--exclude",
        nargs="+",
        default=[],
        metavar="TYPE",
        help="leave these machine types out (default: none)",
    )
    t.add_argument("--epochs", type=float, default=10.0, help="passes over the data (default: 10)")
    t.add_argument(
        "--max-minutes", type=float, metavar="M", help="stop (and checkpoint) after M min"
    )
    t.add_argument(
        "--batch-size", type=int, default=64, metavar="N", help="clips per step (default: 64)"
    )
    t.add_argument(
        "--lr", type=float, default=1e-3, metavar="RATE", help="learning rate (default: 0.001)"
    )
    t.add_argument(
        "--width", type=int, default=16, metavar="N", help="channel width multiplier (default: 16)"
    )
    t.add_argument(
        "--window-seconds",
        type=float,
        default=10.0,
        metavar="S",
        help="model input window in seconds (default: 10)",
    )
    t.add_argument(
        "--crop-seconds",
        type=float,
        metavar="S",
        help="train the spectrogram branch on random S-second crops (faster on small CPUs)",
    )
    t.add_argument(
        "--fault-data",
        type=Path,
        metavar="DIR",
        help="fault-aware training: the anomalous test/ clips of this DCASE-layout folder "
        "become extra classes, one per machine type and section",
    )
    t.add_argument(
        "--loss",
        choices=("adaproj", "subcluster"),
        default="adaproj",
        help="class loss: AdaProj subspaces (default) or sub-cluster AdaCos centres",
    )
    t.add_argument(
        "--subclusters",
        type=int,
        default=16,
        metavar="N",
        help="centres per class with --loss subcluster (default: 16)",
    )
    t.add_argument("--seed", type=int, default=0, help="random seed (default: 0)")
    t.add_argument("--threads", type=int, metavar="N", help="torch CPU threads")
    t.add_argument("--restart", action="store_true", help="discard an existing checkpoint")
    t.set_defaults(func=cmd_train)

    e = subparsers.add_parser(
        "export",
        help="export a trained model to ONNX (fp32) and quantize it to int8",
        description="Write <name>-<version>.onnx (waveform in, embedding out, front-end "
        "included) and <name>-<version>-int8.onnx (static QDQ int8, calibrated on training "
        "clips), both carrying edgeasd's metadata.",
    )
    e.add_argument("run", type=Path, metavar="RUN_DIR", help="folder with checkpoint.pt")
    e.add_argument("--out", type=Path, metavar="DIR", help="output folder (default: RUN_DIR)")
    e.add_argument(
        "--name",
        default="edgeasd-directact",
        help="the model's name, in the file name and metadata (default: edgeasd-directact)",
    )
    e.add_argument(
        "--version",
        default="v1",
        help="the model's version, in the file name and metadata (default: v1)",
    )
    e.add_argument(
        "--calibration", type=Path, metavar="DIR", help="DCASE-layout folder for calibration"
    )
    e.set_defaults(func=cmd_export)

    q = subparsers.add_parser(
        "quantize",
        help="quantize an exported fp32 ONNX model to int8",
        description="Static QDQ int8 quantization calibrated on windows of a folder's clips.",
    )
    q.add_argument(
        "model", type=Path, metavar="MODEL.onnx", help="the fp32 model `edgeasd export` wrote"
    )
    q.add_argument(
        "--calibration",
        type=Path,
        required=True,
        metavar="DIR",
        help="DCASE-layout folder (its train/ clips are used)",
    )
    q.add_argument(
        "--out",
        type=Path,
        metavar="OUT.onnx",
        help="the int8 model to write (default: MODEL-int8.onnx)",
    )
    q.add_argument("--windows", type=int, default=32, help="calibration windows (default: 32)")
    q.set_defaults(func=cmd_quantize)


def cmd_train(args: argparse.Namespace) -> int:
    """``edgeasd train``."""
    _require_torch()
    from edgeasd.train.trainer import CHECKPOINT, TrainConfig, train

    if args.restart:
        (args.out / CHECKPOINT).unlink(missing_ok=True)
    elif (args.out / CHECKPOINT).is_file():
        print(f"resuming from {args.out / CHECKPOINT}", file=sys.stderr)
    cfg = TrainConfig(
        data=str(args.data),
        out=str(args.out),
        machines=args.machines,
        exclude=args.exclude,
        epochs=args.epochs,
        max_minutes=args.max_minutes,
        batch_size=args.batch_size,
        lr=args.lr,
        seed=args.seed,
        threads=args.threads,
        crop_seconds=args.crop_seconds,
        fault_data=str(args.fault_data) if args.fault_data else None,
        loss=args.loss,
        n_subclusters=args.subclusters,
        model={"width": args.width, "window_seconds": args.window_seconds},
    )
    print(train(cfg, progress=True))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """``edgeasd export``."""
    _require_torch()
    from edgeasd.train.deploy import export_checkpoint

    fp32, int8 = export_checkpoint(
        args.run, args.out or args.run, args.name, args.version, args.calibration
    )
    print(fp32)
    print(int8)
    return 0


def cmd_quantize(args: argparse.Namespace) -> int:
    """``edgeasd quantize``."""
    _require_torch()
    from edgeasd.train.deploy import quantize_file

    out = args.out or args.model.with_name(args.model.stem + "-int8.onnx")
    print(quantize_file(args.model, out, args.calibration, args.windows))
    return 0
