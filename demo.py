"""The whole pipeline on generated DIS-like data, on a CPU, in about a minute:

    generate data → train a small FSANet → predict (test.py's code) → score (eval.py's) → figures

    python demo.py                  # ~50 s on one thread (AMD EPYC Zen 4); everything under results/demo/
    python demo.py --quick          # ~30 s: fewer images, two short epochs (what the tests run)

The model is the ``fsanet_small`` configuration (lib/configs.py) with random backbones,
so the numbers only show that every stage works, not the paper's accuracy.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional, Sequence

from utils.common.logs import get_logger, setup_logging

# torch and every stage's code are imported in run_demo(): -h needs none of them

log = get_logger("demo")

#: the files the demo writes in its figure folder (Figures/ holds the committed ones).
DEMO_FIGURES = ("architecture.png", "demo_grid.png", "demo_pr_DIS-TE1.png", "demo_fm_DIS-TE1.png")
#: what the demo writes in its --out folder: generated data, train.py's run folders, maps and tables, figures
DEMO_FOLDERS = ("data", "checkpoints", "logs", "results", "figures")


def run_demo(out: Path, quick: bool = False, figures: Optional[Path] = None, threads: Optional[int] = 1) -> dict:
    """Run every stage under ``out``; returns the evaluation results. ``out`` records what the
    demo writes there (its manifest), so a second run replaces the first."""
    from utils.common.ownership import claim_folder

    # a folder holding anything else (a project, a dataset) is refused; the demo's own earlier run is replaced
    with claim_folder(out, "demo.py", "--out") as owned:
        owned.record(DEMO_FOLDERS)
        figures = figures or out / "figures"
        with claim_folder(figures, "demo.py", "--figures") as figure_folder:
            figure_folder.record(DEMO_FIGURES)
            return _run_stages(out, quick, figures, threads)


def _run_stages(out: Path, quick: bool, figures: Path, threads: Optional[int]) -> dict:
    """The five stages of :func:`run_demo`, in folders it has claimed."""
    from utils.common.fileio import atomic_copy
    from utils.data.sets import DIS_SETS
    from utils.data.synthetic import write_dataset
    from utils.evaluation.figures import draw_architecture, qualitative_grid
    from utils.evaluation.reports import evaluate_to_folder, format_table, provenance, provenance_line
    from utils.inference.config import PredictConfig
    from utils.inference.predict import run_prediction
    from utils.training.config import TrainConfig
    from utils.training.run import run_training

    # the poly schedule runs the last epoch at lr 0, so even the quick demo trains 2 epochs
    n_train, n_test, size, trainsize, epochs = (8, 2, 128, 64, 2) if quick else (24, 4, 192, 128, 3)
    data = out / "data"
    log.info("1/5 generating %d training pairs and %d per test set (%d px)", n_train, n_test, size)
    write_dataset(data / "TrainDataset", n_train, size, "authors", seed=0)
    for index, name in enumerate(DIS_SETS):  # both layouts: DIS-VD like the authors', the rest like DIS5K
        write_dataset(
            data / "TestDataset" / name,
            n_test,
            (size, size * 3 // 4),
            "authors" if index == 0 else "dis5k",
            seed=100 + index,
        )

    log.info("2/5 training %d epoch(s) at %d px", epochs, trainsize)
    config = TrainConfig(
        train_path=str(data / "TrainDataset"),
        train_save="demo",
        out_root=str(out),
        device="cpu",
        epoch=epochs,
        batchsize=4,
        trainsize=trainsize,
        workers=0,
        save_every=1,
        no_progress=True,
        overwrite=True,
        random_backbones=True,  # generated data and no ImageNet files: random encoders, said explicitly
        val_path=str(data / "TestDataset" / "DIS-VD"),
        config="fsanet_small",
        threads=threads,
        radius=24.0,
        rates=(1.0,) if quick else TrainConfig.rates,
    )
    trained = run_training(config)

    log.info("3/5 test.py on %s", ", ".join(DIS_SETS))
    results_dir = out / "results"
    methods = {"FSANet": results_dir / "FSANet"}
    if not quick and epochs > 1:  # a second "method": the first epoch's weights, to show side-by-side evaluation
        methods["FSANet-epoch1"] = results_dir / "FSANet-epoch1"
    for name, save in methods.items():
        checkpoint = trained.checkpoint_dir / ("latest.pth" if name == "FSANet" else "FSANet-1.pth")
        config = PredictConfig(str(checkpoint), testsize=trainsize, batch_size=2, workers=0, device="cpu", threads=threads)
        run_prediction(config, save, data / "TestDataset", progress=False)

    log.info("4/5 eval.py")
    eval_dir = results_dir / "eval"
    results, _ = evaluate_to_folder(methods, data / "TestDataset", eval_dir, progress=False)

    log.info("5/5 figures in %s", figures)
    draw_architecture(figures / "architecture.png")
    qualitative_grid(
        data / "TestDataset" / "DIS-TE1",
        {name: path / "DIS-TE1" for name, path in methods.items()},
        figures / "demo_grid.png",
        count=3,
    )
    for kind in ("pr", "fm"):
        atomic_copy(eval_dir / f"{kind}_DIS-TE1.png", figures / f"demo_{kind}_DIS-TE1.png")
    sys.stdout.write(format_table(results, "isnet") + "\n\n" + provenance_line(provenance("isnet")) + "\n")
    log.info(
        "done: checkpoints in %s, maps in %s, tables in %s, figures in %s",
        trained.checkpoint_dir,
        results_dir,
        eval_dir,
        figures,
    )
    return results


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="results/demo", help="where everything goes")
    parser.add_argument("--quick", action="store_true", help="the smallest run (CI)")
    parser.add_argument("--figures", default=None, help="figure folder (default <out>/figures)")
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="CPU threads (default 1: the printed table is the README's on any machine, and a shared "
        "machine's busy cores do not slow it down; other counts change the last digits)",
    )
    args = parser.parse_args(argv)
    setup_logging()
    from utils.common.fileio import OutputError

    try:
        run_demo(Path(args.out), args.quick, Path(args.figures) if args.figures else None, args.threads)
    except OutputError as error:  # --out or --figures holding files the demo did not write: nothing is changed
        log.error("%s", error)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
