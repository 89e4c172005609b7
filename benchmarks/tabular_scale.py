"""tabular_gbm end to end at ISIC 2024's size, through the FULL config (issue 25, item 1).

python benchmarks/tabular_scale.py [--out data/scale/isic2024] [--patients 1042]
    [--lesions 401059] [--positives 393] [--args "model.n_bags=5 ..."]

Generates Kaggle's layout with the project's own generator (`train-metadata.csv` with the
train-only columns, a 3-row `test-metadata.csv` without them, as Kaggle ships it), then runs
`python -m projects.tabular_gbm.train experiment=full` on it (features, 5 patient-grouped folds,
bagging, final fit, registration) into a throwaway MLflow store, and the predict CLI on the
test file with the registered champion. Each step runs as its own process: its wall time and
peak RSS (`ru_maxrss` of that child) are printed as one markdown table with the machine and
the command. The generator draws lesions per patient at random; the cohort is cut to
`--lesions` rows and the positives are the generator's own (their count is printed, the aim
being the real 393).
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks._util import machine  # noqa: E402
from shared.datasets import isic2024 as isic  # noqa: E402
from shared.datasets.isic2024_synthetic import generate_metadata  # noqa: E402

REPO = Path(__file__).resolve().parent.parent


def write_kaggle_layout(out: Path, patients: int, lesions: int, positives: int) -> dict:
    """train-metadata.csv (all public columns) and a 3-row test-metadata.csv, as Kaggle ships.
    The positive rate is set so the expected count is `positives`."""
    out.mkdir(parents=True, exist_ok=True)
    rate = positives / lesions
    df = generate_metadata(patients, lesions / patients, rate, seed=0).head(lesions + 3)
    train, test = df.iloc[:lesions], df.iloc[lesions:]
    public = [c for c in isic.TRAIN_COLUMNS if c in df.columns]
    train[public].to_csv(out / "train-metadata.csv", index=False, na_rep="NA")
    test_cols = [c for c in public if c not in (isic.TARGET, *isic.TRAIN_ONLY)]
    test[test_cols].to_csv(out / "test-metadata.csv", index=False, na_rep="NA")
    return {
        "lesions": len(train),
        "patients": train[isic.PATIENT].nunique(),
        "positives": int(train[isic.TARGET].sum()),
        "columns": len(public),
        "csv_mb": (out / "train-metadata.csv").stat().st_size / 2**20,
    }


def run_child(cmd: list[str], env: dict[str, str], log: Path) -> tuple[float, float]:
    """Wall seconds and peak RSS (GiB, from `wait4`'s rusage of that child alone) of one
    child process; its output goes to `log`."""
    start = time.perf_counter()
    with log.open("w") as fh:
        proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=fh, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        sys.exit(f"error: `{shlex.join(cmd)}` exited {status}; see {log}")
    return wall, usage.ru_maxrss / 2**20  # Linux: KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "data/scale/isic2024")
    parser.add_argument("--patients", type=int, default=1042)
    parser.add_argument("--lesions", type=int, default=401_059)
    parser.add_argument("--positives", type=int, default=393)
    parser.add_argument("--args", default="", help="extra Hydra overrides for train")
    args = parser.parse_args()

    start = time.perf_counter()
    data = write_kaggle_layout(args.out, args.patients, args.lesions, args.positives)
    t_gen = time.perf_counter() - start

    store = Path(tempfile.mkdtemp(prefix="tabular-scale-"))
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": f"sqlite:///{store}/mlflow.db",
        "MLFLOW_ARTIFACT_ROOT": str(store / "artifacts"),
        "PROJECT_ROOT": str(REPO),
    }
    train_cmd = [
        sys.executable, "-m", "projects.tabular_gbm.train", "experiment=full",
        f"data.dir={args.out}", f"data.folds_file={args.out}/folds.csv",
        f"paths.output_dir={store}/outputs", *shlex.split(args.args),
    ]  # fmt: skip
    t_train, rss_train = run_child(train_cmd, env, store / "train.log")
    predict_cmd = [
        sys.executable, "-m", "projects.tabular_gbm.predict",
        "--input", str(args.out / "test-metadata.csv"), "--output", str(store / "submission.csv"),
        "--model-uri", "models:/tabular_gbm-isic2024@champion",
    ]  # fmt: skip
    t_pred, rss_pred = run_child(predict_cmd, env, store / "predict.log")
    timings = [
        line.strip()
        for line in (store / "train.log").read_text().splitlines()
        if "oof_pauc" in line or "final fit" in line
    ]

    print(f"\n### tabular_gbm at ISIC 2024 size, FULL config ({date.today()})\n")
    print(f"machine: {machine()}; python {platform.python_version()}")
    print(f"command: python benchmarks/tabular_scale.py {shlex.join(sys.argv[1:])}\n")
    print("| step | wall | peak RSS |\n|---|---|---|")
    print(
        f"| generate {data['lesions']:,} lesions, {data['patients']:,} patients, "
        f"{data['positives']} positives, {data['columns']} columns "
        f"({data['csv_mb']:.0f} MiB CSV) | {t_gen:.1f} s | (this process) |"
    )
    step = f"`{shlex.join(train_cmd[1:4])} ...` end to end"
    print(f"| {step} | {t_train:.1f} s | {rss_train:.2f} GiB |")
    print(f"| predict CLI on test-metadata.csv (3 rows) | {t_pred:.1f} s | {rss_pred:.2f} GiB |")
    print("\n" + "\n".join(timings[-3:]))
    print(f"\nlogs and store: {store}")


if __name__ == "__main__":
    main()
