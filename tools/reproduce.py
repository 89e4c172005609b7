"""Re-create a logged run from its record: same commit, same config, same seed, same data.

python -m tools.reproduce RUN_ID [--project NAME] [--tolerance 0] [--tolerance METRIC=X ...]

Reads the run's `config.yaml`, `git_sha`, `git_dirty`, `data_fingerprint` and `data_paths`
tags; refuses when the run was made from uncommitted changes or the data no longer hashes to
its fingerprint; checks the commit out into a temporary `git worktree`, re-runs the project's
`run(cfg)` there (a subprocess importing that commit's code), prints the original and new
metrics side by side, and removes the worktree. Outputs go to `<paths.output_dir>/reproduce/
<run id>/`, never into the original run's folder or the shared OOF file; a package whose
version differs from the one the run logged is named in a warning. Exit 0 when the headline
metric (and every metric given its own `--tolerance METRIC=X`) matches within its tolerance
(default `--tolerance X`, else 0: a CPU smoke run repeats exactly; a GPU run needs one), 1 when
not, 2 when the run cannot be reproduced.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared import REPO_ROOT
from shared.errors import InputError

# Runs in the worktree with `python -P` (the current folder is not put on sys.path), so the
# modules imported are that commit's: PYTHONPATH names the worktree.
_CHILD = """
import importlib, json, logging, sys
from omegaconf import OmegaConf
project, config, out = sys.argv[1:4]
logging.basicConfig(level=logging.INFO)
train = importlib.import_module(f"projects.{project}.train")
metrics = train.run(OmegaConf.create(json.load(open(config))))
json.dump({"metrics": {k: float(v) for k, v in metrics.items()}, "code": train.__file__},
          open(out, "w"))
"""


class ReproduceError(InputError):
    """The run cannot be reproduced as recorded (dirty tree, changed data, missing record)."""


@dataclass
class Record:
    """What a run logged that reproducing it needs."""

    run_id: str
    project: str
    sha: str
    config: dict[str, Any]
    headline: str
    metrics: dict[str, float]
    cwd: str | None
    tags: dict[str, str]


def _git(*args: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True)


def _project_of(run: Any, project: str | None) -> str:
    """--project, else the entry point MLflow recorded, else the experiment's name."""
    if project:
        return project
    source = run.data.tags.get("mlflow.source.name", "")
    if m := re.search(r"projects[/\\](\w+)[/\\]train\.py$", source):
        return m.group(1)
    from shared.tracking import get_mlflow

    return get_mlflow().get_experiment(run.info.experiment_id).name


def read_record(run_id: str, project: str | None = None) -> Record:
    """The run's record, or a ReproduceError saying what stops it from being reproduced."""
    from shared.provenance import data_fingerprint
    from shared.tracking import get_mlflow, tracking_uri

    mlflow = get_mlflow()
    client = mlflow.MlflowClient()
    try:
        run = client.get_run(run_id)
    except mlflow.exceptions.MlflowException:
        raise ReproduceError(f"no run {run_id} in {tracking_uri()}") from None
    tags = run.data.tags
    if "git_sha" not in tags:
        raise ReproduceError(
            f"run {run_id} is not a pipeline run (no git_sha tag; a fold or a sweep's parent?)"
        )
    sha = tags["git_sha"]
    if sha == "unknown":
        raise ReproduceError(f"run {run_id} was not made inside a git checkout: no commit")
    if tags.get("git_dirty") == "true":
        raise ReproduceError(
            f"run {run_id} was made from uncommitted changes on top of {sha[:12]} "
            "(git_dirty=true): its code is not in any commit, so it cannot be reproduced"
        )
    if "data_paths" not in tags or "data_fingerprint" not in tags:
        raise ReproduceError(
            f"run {run_id} did not record its data files (no data_paths/data_fingerprint tag)"
        )
    paths = json.loads(tags["data_paths"])
    now = data_fingerprint(paths)
    if now != tags["data_fingerprint"]:
        raise ReproduceError(
            f"the data of run {run_id} changed: it was made on data_fingerprint="
            f"{tags['data_fingerprint']}, the files now hash to {now} ({', '.join(paths)})"
        )
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = client.download_artifacts(run_id, "config.yaml", tmp)
        except Exception:
            raise ReproduceError(f"run {run_id} has no config.yaml artifact") from None
        import yaml

        config = yaml.safe_load(Path(path).read_text())
    headline = config.get("tracking", {}).get("headline_metric") or tags.get("headline_metric")
    if headline not in run.data.metrics:
        raise ReproduceError(f"run {run_id} has no headline metric {headline!r}")
    return Record(
        run_id=run_id,
        project=_project_of(run, project),
        sha=sha,
        config=config,
        headline=headline,
        metrics=dict(run.data.metrics),
        cwd=tags.get("cwd"),
        tags=dict(tags),
    )


def rerun(record: Record, repo: Path = REPO_ROOT) -> dict[str, Any]:
    """Run the record's config at its commit in a temporary worktree; {metrics, code}."""
    if _git("cat-file", "-e", f"{record.sha}^{{commit}}", cwd=repo).returncode:
        raise ReproduceError(
            f"commit {record.sha[:12]} of run {record.run_id} is not in {repo} (git fetch it)"
        )
    config = own_outputs(json.loads(json.dumps(record.config)), record.run_id)
    tracking = config.setdefault("tracking", {})
    tracking["register"] = False  # a reproduction never moves the champion
    tracking["run_name"] = f"reproduce-{record.run_id[:8]}"
    tracking["tags"] = {**(tracking.get("tags") or {}), "reproduces": record.run_id}
    tmp = Path(tempfile.mkdtemp(prefix="reproduce-"))
    tree = tmp / "src"
    added = _git("worktree", "add", "--detach", str(tree), record.sha, cwd=repo)
    if added.returncode:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ReproduceError(f"git worktree add failed: {added.stderr.strip()}")
    try:
        if not (tree / "projects" / record.project / "train.py").is_file():
            raise ReproduceError(
                f"commit {record.sha[:12]} has no projects/{record.project}/train.py "
                "(pass --project)"
            )
        (tmp / "config.json").write_text(json.dumps(config))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tree), *_pythonpath()])}
        cwd = record.cwd if record.cwd and Path(record.cwd).is_dir() else str(tree)
        print(f"reproducing run {record.run_id} at {record.sha[:12]} in {tree}", flush=True)
        done = subprocess.run(
            [
                sys.executable,
                "-P",
                "-c",
                _CHILD,
                record.project,
                str(tmp / "config.json"),
                str(tmp / "out.json"),
            ],
            cwd=cwd,
            env=env,
        )
        if done.returncode:
            raise ReproduceError(f"the re-run at {record.sha[:12]} exited with {done.returncode}")
        return json.loads((tmp / "out.json").read_text())
    finally:
        _git("worktree", "remove", "--force", str(tree), cwd=repo)
        _git("worktree", "prune", cwd=repo)
        shutil.rmtree(tmp, ignore_errors=True)


def own_outputs(config: dict[str, Any], run_id: str) -> dict[str, Any]:
    """The config with every output redirected to `<paths.output_dir>/reproduce/<run id>/`:
    a reproduction never writes into the original run's folder, or over the shared files later
    runs read (image_classifier's OOF file, which tabular_gbm stacks on)."""
    paths = config.setdefault("paths", {})
    base = Path(paths.get("output_dir") or REPO_ROOT / "outputs") / "reproduce" / run_id[:8]
    paths["output_dir"] = str(base / "outputs")
    if "run_dir" in config:
        config["run_dir"] = str(base / "run")
        config["resume"] = False
    if "oof_file" in config:
        config["oof_file"] = str(base / "oof.csv")
    return config


def version_changes(tags: Mapping[str, str]) -> list[str]:
    """`package: logged -> installed` for each package version the run logged that differs
    now (a different torch or LightGBM may move the numbers: worth a warning, not a refusal)."""
    from shared.provenance import package_versions

    now = package_versions()
    return [
        f"{key.removeprefix('version.')}: {old} -> {now.get(key, 'not installed')}"
        for key, old in sorted(tags.items())
        if key.startswith("version.") and now.get(key) != old
    ]


def parse_tolerances(values: Sequence[str]) -> tuple[float, dict[str, float]]:
    """`--tolerance 0.001` (every metric) and `--tolerance val_map3=0.02` (that one metric)."""
    default, per_metric = 0.0, {}
    for value in values:
        name, sep, number = value.rpartition("=")
        try:
            tol = float(number)
        except ValueError:
            raise ReproduceError(f"--tolerance {value!r}: give a number or METRIC=NUMBER") from None
        if tol < 0:
            raise ReproduceError(f"--tolerance {value!r}: must not be negative")
        if sep:
            per_metric[name] = tol
        else:
            default = tol
    return default, per_metric


def _pythonpath() -> list[str]:
    return [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]


def compare(
    original: Mapping[str, float], new: Mapping[str, float], headline: str
) -> list[tuple[str, float, float]]:
    """(metric, original, new) for every metric both have, the headline first."""
    keys = [headline] + sorted(k for k in new if k in original and k != headline)
    return [(k, float(original[k]), float(new[k])) for k in keys if k in new]


def main(argv: Sequence[str] | None = None) -> int:
    from shared.cli import expected_errors

    p = argparse.ArgumentParser(prog="python -m tools.reproduce", description=__doc__)
    p.add_argument("run_id")
    p.add_argument("--project", help="default: from the run's entry point or experiment")
    p.add_argument(
        "--tolerance",
        action="append",
        default=[],
        help="allowed |new - original|: NUMBER for every metric (default 0), METRIC=NUMBER for "
        "one (repeatable; e.g. a GPU run's val_map3=0.01)",
    )
    args = p.parse_args(argv)
    with expected_errors():
        default_tol, tolerances = parse_tolerances(args.tolerance)
        record = read_record(args.run_id, args.project)
        for change in version_changes(record.tags):
            print(f"warning: package version changed since the run: {change}", flush=True)
        result = rerun(record)
    rows = compare(record.metrics, result["metrics"], record.headline)
    width = max(len(k) for k, _, _ in rows) + 2
    print(f"\n{'metric':<{width}} {'original':>12} {'reproduced':>12} {'difference':>12}")
    failed = []
    for k, a, b in rows:
        mark = " *" if k == record.headline else ""
        print(f"{k:<{width}} {a:>12.6f} {b:>12.6f} {b - a:>12.3g}{mark}")
        judged = k == record.headline or k in tolerances
        if judged and abs(b - a) > tolerances.get(k, default_tol):
            failed.append(k)
    _, a, b = rows[0]
    verdict = (
        "reproduced" if not failed else f"NOT reproduced ({', '.join(failed)} out of tolerance)"
    )
    print(f"\n{record.headline}: {a:.6f} -> {b:.6f}: {verdict} (code from {result['code']})")
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
