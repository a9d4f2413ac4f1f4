"""``edgeasd metrics`` and ``edgeasd eval``: the official DCASE metric and the comparison of
score-normalization approaches on a DCASE-layout dataset."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``metrics`` and ``eval`` subcommands."""
    p = subparsers.add_parser(
        "metrics",
        help="official DCASE Task 2 metric of a folder of score files",
        description="Compute AUC(source), AUC(target), pAUC and the official score (DCASE "
        "2023-2025 evaluator; DCASE 2020: AUC and pAUC per machine ID) from score files "
        "anomaly_score_<machine>_section_<XX>_test.csv with rows '<file>,<score>'.",
    )
    p.add_argument("score_dir", metavar="SCORE_DIR", type=Path, help="folder of score files")
    p.add_argument(
        "--ground-truth",
        type=Path,
        metavar="DIR",
        help="folder with the evaluator's ground_truth_data/ and ground_truth_domain/ (or the "
        "2020 eval_data_list.csv); without it labels and domains come from the file names",
    )
    p.add_argument("--json", action="store_true", help="print the results as JSON")
    p.set_defaults(func=cmd_metrics)

    e = subparsers.add_parser(
        "eval",
        help="compare score normalizations on a DCASE-layout dataset",
        description="Embed a DCASE-layout dataset, score every section's test clips against "
        "its training clips with each approach of the paper's Table II, write official score "
        "files and a Markdown report.",
    )
    e.add_argument(
        "--data",
        type=Path,
        required=True,
        metavar="DIR",
        help="dataset root (<machine>/{train,test}/*.wav)",
    )
    e.add_argument(
        "--model",
        type=Path,
        nargs="+",
        metavar="ONNX",
        help="embedding model (default: the shipped default model); several files: their "
        "ensemble, cosine distances averaged",
    )
    e.add_argument(
        "--ground-truth",
        type=Path,
        metavar="DIR",
        help="ground truth of anonymized evaluation test files",
    )
    e.add_argument(
        "--out",
        type=Path,
        default=Path("eval-out"),
        metavar="DIR",
        help="where score files and report.md go (default: eval-out)",
    )
    e.add_argument(
        "--cache-dir",
        type=Path,
        metavar="DIR",
        help="embedding cache (default: <out>/embedding-cache)",
    )
    e.add_argument(
        "--approaches",
        metavar="LIST",
        help="comma-separated approach names (default: all; an unknown name lists them)",
    )
    e.add_argument(
        "--sweep",
        action="store_true",
        help="also run the K / r sensitivity sweep (slow on large sets)",
    )
    e.add_argument("--threads", type=int, default=1, help="onnxruntime threads (default 1)")
    e.add_argument("--json", action="store_true", help="print the results as JSON")
    e.set_defaults(func=cmd_eval)

    r = subparsers.add_parser(
        "eval-real",
        help="judge models on a folder of labelled real recordings (AUC, pAUC, operating point)",
        description="Per machine type and per machine id: enroll every other normal recording "
        "in the agent's bank, score the rest and the anomalous ones, report AUC and pAUC (official "
        "DCASE metric) and the agent's verdicts at the default threshold. FOLDER holds a "
        "manifest.csv (columns file, machine, label[, machine_id, domain]), the DCASE layout "
        "<machine>/{train,test}/*.wav, or folders <machine>/[<id>/]{normal,anomaly}/*.wav.",
    )
    r.add_argument("folder", metavar="FOLDER", type=Path, help="folder of labelled recordings")
    r.add_argument(
        "--model",
        type=Path,
        nargs="+",
        action="append",
        metavar="ONNX",
        help="model to judge (default: the shipped default); several files after one --model: "
        "their ensemble; repeat --model to compare models side by side",
    )
    r.add_argument(
        "--config",
        type=Path,
        metavar="YAML",
        help="agent configuration whose window, quality, scoring and threshold sections apply "
        "(default: the built-in defaults)",
    )
    r.add_argument(
        "--by",
        choices=("type", "id", "both"),
        default="both",
        help="per machine type, per machine id, or both (default)",
    )
    r.add_argument("--threads", type=int, default=1, help="onnxruntime threads (default 1)")
    r.add_argument("--json", action="store_true", help="print the results as JSON")
    r.set_defaults(func=cmd_eval_real)


def cmd_metrics(args: argparse.Namespace) -> int:
    """Print the official metric of ``SCORE_DIR``."""
    from edgeasd.evaluation.metrics import Summary
    from edgeasd.evaluation.report import format_2020, format_summary
    from edgeasd.evaluation.scorefiles import evaluate_score_dir

    result = evaluate_score_dir(args.score_dir, args.ground_truth)
    if args.json:
        if isinstance(result, Summary):
            print(json.dumps(result.to_dict(), indent=2))
        else:
            print(json.dumps([vars(r) for r in result], indent=2))
    else:
        print(format_summary(result) if isinstance(result, Summary) else format_2020(result))
    return 0


def cmd_eval(args: argparse.Namespace) -> int:
    """Run the comparison and write score files and the Markdown report."""
    from edgeasd.evaluation.pipeline import run_evaluation

    names = [a.strip() for a in args.approaches.split(",")] if args.approaches else None
    model = args.model
    report = run_evaluation(
        data=args.data,
        model=model,
        out=args.out,
        ground_truth=args.ground_truth,
        cache_dir=args.cache_dir,
        approaches=names,
        sweep=args.sweep,
        threads=args.threads,
    )
    print(json.dumps(report.to_dict(), indent=2) if args.json else report.markdown)
    return 0


def cmd_eval_real(args: argparse.Namespace) -> int:
    """Print each model's real-audio report, then (several models) the comparison."""
    from edgeasd.config import Config, load_config
    from edgeasd.evaluation.real import comparison_table, run_real_evaluation

    config = load_config(args.config) if args.config else Config()
    levels = ("type", "id") if args.by == "both" else (args.by,)
    models = args.model or [None]
    reports = [
        run_real_evaluation(
            args.folder, m if m is None or len(m) > 1 else m[0], config, args.threads, levels
        )
        for m in models
    ]
    if args.json:
        print(json.dumps([r.to_dict() for r in reports], indent=2))
        return 0
    print("\n".join(r.markdown for r in reports))
    if len(reports) > 1:
        for level in levels:
            print(comparison_table(reports, level))
    return 0
