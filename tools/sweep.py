"""Hyper-parameter sweeps: a small Optuna driver over any project's `run(cfg)`.

python -m tools.sweep --project tabular_gbm --trials 20 [--n-jobs 2] [--space default]
    [--storage postgresql+psycopg2://.../optuna] [key=value ...]

The search space is `configs/<project>/hparams_search/<space>.yaml` (Hydra keys -> Optuna
distributions; read here, not composed by Hydra). The study lives in a database (`sweeps.db`
at the repo root unless `--storage`), so a killed sweep resumes where it stopped: finished
trials count towards `--trials`, and a trial left RUNNING by a dead process is marked FAIL and
retried with its parameters. Each trial is a nested MLflow run under one parent run, which ends
with the best trial's parameters (tags `best.<key>`) and a plot of the optimisation history.
Trials run in `--n-jobs` worker processes; they never register models (`tracking.register`
is false). Pipelines call `shared.pruning.report(value, step)` after each fold or epoch: a
no-op outside a sweep, the pruner's input (MedianPruner) inside one.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared import REPO_ROOT, pruning
from shared.config import compose
from shared.logging import get_logger
from tools.registry import ML_PROJECTS, train_module
from tools.sweep_space import Space, SweepError, hydra_value, load_space, suggest
from tools.sweep_storage import (
    WORKER_ATTR,
    fail_stale_trials,
    finished,
    mask_url,
    open_storage,
    process_token,
)

log = get_logger(__name__)

DEFAULT_STORAGE = f"sqlite:///{REPO_ROOT / 'sweeps.db'}"
PARENT_ATTR = "mlflow_parent_run_id"


@dataclass
class Job:
    """Everything a worker process needs (pickled to it)."""

    project: str
    study_name: str
    storage: str
    space: Space
    overrides: list[str]
    headline: str
    experiment_id: str
    parent_run_id: str
    output_dir: str
    seed: int


def _die_with_parent() -> None:
    """Linux: the kernel kills this worker when the driver dies, even by SIGKILL."""
    try:
        import ctypes
        import signal

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _trial_overrides(job: Job, number: int, values: Mapping[str, Any]) -> list[str]:
    return [
        *job.overrides,
        *job.space.overrides,
        *(f"{k}={hydra_value(v)}" for k, v in values.items()),
        "tracking.register=false",
        f"tracking.run_name=trial_{number}",
        f"++tracking.tags.sweep={hydra_value(job.study_name)}",
        f"++tracking.tags.optuna_trial={hydra_value(str(number))}",
        f"paths.output_dir={job.output_dir}/trial_{number}",
    ]


def _mark_mlflow_run(client: Any, job: Job, number: int, state: str) -> str | None:
    """Tag the trial's MLflow run with its Optuna state (a pruned one ends KILLED)."""
    runs = client.search_runs(
        [job.experiment_id],
        filter_string=f"tags.sweep = '{job.study_name}' and tags.optuna_trial = '{number}'",
    )
    for r in runs:
        client.set_tag(r.info.run_id, "optuna_state", state)
        if state in ("PRUNED", "FAIL") and r.info.status != "KILLED":
            client.set_terminated(r.info.run_id, "KILLED" if state == "PRUNED" else "FAILED")
    return runs[0].info.run_id if runs else None


def worker(job: Job, index: int, budget: Any) -> None:
    """Run trials until `budget` (a shared counter of trials left to start) is spent."""
    _die_with_parent()
    import optuna
    from optuna.trial import TrialState

    from shared import tracking

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    os.environ[tracking.SWEEP_PARENT_ENV] = job.parent_run_id
    run = train_module(job.project).run
    storage = open_storage(job.storage)
    # A seed per worker and per resume: two workers (or a resumed sweep) never replay the
    # same random start-up draws.
    n_before = len(optuna.load_study(study_name=job.study_name, storage=storage).trials)
    study = optuna.load_study(
        study_name=job.study_name,
        storage=storage,
        sampler=optuna.samplers.TPESampler(
            seed=job.seed + 1000 * index + n_before, **job.space.sampler
        ),
        pruner=optuna.pruners.MedianPruner(**job.space.pruner),
    )
    client = tracking.get_mlflow().MlflowClient()
    while True:
        with budget.get_lock():
            if budget.value <= 0:
                return
            budget.value -= 1
        trial = study.ask()
        trial.set_user_attr(WORKER_ATTR, process_token())
        values = suggest(trial, job.space.params)
        state, value = TrialState.FAIL, None
        try:
            with pruning.reporting_to(trial, job.space.report_metric):
                cfg = compose(job.project, _trial_overrides(job, trial.number, values))
                value = float(run(cfg)[job.headline])
            state = TrialState.COMPLETE
        except optuna.TrialPruned as exc:
            log.info("trial %d %s", trial.number, exc)
            state = TrialState.PRUNED
        except Exception:
            log.exception("trial %d failed", trial.number)
        run_id = _mark_mlflow_run(client, job, trial.number, state.name)
        if run_id:
            trial.set_user_attr("mlflow_run_id", run_id)
        study.tell(trial, value if state == TrialState.COMPLETE else None, state=state)
        shown = " ".join(f"{k}={hydra_value(v)}" for k, v in values.items())
        log.info(
            "worker %d: trial %d %s, %s=%s: %s",
            index,
            trial.number,
            state.name,
            job.headline,
            value,
            shown,
        )


# --- the driver -------------------------------------------------------------------------------


def _parent_run(client: Any, study: Any, experiment_id: str, args: argparse.Namespace) -> str:
    """The sweep's MLflow parent run: the one this study already has (resume), else a new one."""
    run_id = study.user_attrs.get(PARENT_ATTR)
    if run_id:
        try:
            if client.get_run(run_id).info.lifecycle_stage == "active":
                client.update_run(run_id, status="RUNNING")
                return run_id
        except Exception:  # another tracking store than the first time: start a new parent
            pass
    run = client.create_run(
        experiment_id,
        run_name=f"sweep-{study.study_name}",
        tags={"sweep": study.study_name, "sweep_role": "parent"},
    )
    client.log_batch(
        run.info.run_id,
        params=[
            _param("sweep.project", args.project),
            _param("sweep.space", args.space),
            _param("sweep.storage", mask_url(args.storage)),
            _param("sweep.overrides", " ".join(args.overrides)),
        ],
    )
    study.set_user_attr(PARENT_ATTR, run.info.run_id)
    return run.info.run_id


def _param(key: str, value: str) -> Any:
    from mlflow.entities import Param

    return Param(key, value[:6000])


def _finish_parent(client: Any, run_id: str, study: Any, space: Space, headline: str) -> Any:
    """Best trial's parameters as tags, counts as metrics, optimisation history as a plot."""
    import warnings

    from mlflow.entities import Metric, RunTag
    from optuna.trial import TrialState

    counts = {s: len(study.get_trials(deepcopy=False, states=(s,))) for s in TrialState}
    ts = int(time.time() * 1000)
    metrics = [Metric(f"n_{s.name.lower()}", float(n), ts, 0) for s, n in counts.items()]
    best = None
    if counts[TrialState.COMPLETE]:
        best = study.best_trial
        tags = [RunTag(f"best.{k}", str(v)) for k, v in best.params.items()]
        tags += [
            RunTag("best_trial", str(best.number)),
            RunTag("best_run_id", str(best.user_attrs.get("mlflow_run_id", ""))),
        ]
        metrics.append(Metric(f"best_{headline}", float(best.value), ts, 0))
        client.log_batch(run_id, metrics=metrics, tags=tags)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import matplotlib

            matplotlib.use("Agg")
            from optuna.visualization.matplotlib import plot_optimization_history

            ax = plot_optimization_history(study, target_name=headline)
            ax.figure.set_size_inches(8, 5)
            client.log_figure(run_id, ax.figure, "optimization_history.png")
            import matplotlib.pyplot as plt

            plt.close(ax.figure)
    else:
        client.log_batch(run_id, metrics=metrics)
    client.log_text(run_id, study.trials_dataframe().to_csv(index=False), "trials.csv")
    return best


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m tools.sweep",
        description="An Optuna sweep over a project's pipeline (resumable; see module doc).",
    )
    p.add_argument("--project", required=True, help=f"one of {', '.join(ML_PROJECTS)}")
    p.add_argument("--trials", type=int, required=True, help="finished trials wanted in all")
    p.add_argument("--n-jobs", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--space", default="default", help="configs/<project>/hparams_search/NAME")
    p.add_argument("--storage", default=DEFAULT_STORAGE, help="study database (SQLAlchemy URL)")
    p.add_argument("--study-name", default=None, help="default: <project>-<space>")
    p.add_argument("overrides", nargs="*", help="Hydra overrides for every trial (key=value)")
    args = p.parse_args(argv)
    if args.trials < 1 or args.n_jobs < 1:
        p.error("--trials and --n-jobs must be at least 1")
    return args


def sweep(args: argparse.Namespace) -> Any:
    """Create or resume the study, run the missing trials in workers, finish the parent run."""
    import multiprocessing as mp

    import optuna

    from shared import tracking

    if args.project not in ML_PROJECTS:
        raise SweepError(f"no project {args.project!r}; projects: {', '.join(ML_PROJECTS)}")
    space = load_space(args.project, args.space)
    for key, spec in space.params.items():  # every key must exist in the project's config
        probe = spec["choices"][0] if spec["type"] == "categorical" else spec["low"]
        compose(args.project, [*args.overrides, f"{key}={hydra_value(probe)}"])
    cfg = compose(args.project, [*args.overrides, *space.overrides])
    name = args.study_name or f"{args.project}-{args.space}"
    storage = open_storage(args.storage)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=name, storage=storage, direction=space.direction, load_if_exists=True
    )
    recorded = study.user_attrs.get("overrides")
    if recorded is None:
        study.set_user_attr("overrides", list(args.overrides))
        study.set_user_attr("space", space.name)
    elif recorded != list(args.overrides):
        raise SweepError(
            f"study {name!r} in {mask_url(args.storage)} was started with overrides {recorded}; "
            "pass the same ones to resume it, or --study-name NEW for a new study"
        )
    retried = fail_stale_trials(study, storage)
    if retried:
        print(f"trials {retried} were left RUNNING by a dead process: marked FAIL, re-queued")
    done = len(finished(study))
    left = max(0, args.trials - done)
    print(f"study {name} ({mask_url(args.storage)}): {done} finished, {left} to run", flush=True)

    mlflow = tracking.get_mlflow()
    client = mlflow.MlflowClient()
    experiment_id = tracking.get_or_create_experiment(cfg.tracking.experiment)
    parent = _parent_run(client, study, experiment_id, args)  # before any worker starts
    for number in retried:  # their MLflow runs died with the process
        job_tags = f"tags.sweep = '{name}' and tags.optuna_trial = '{number}'"
        for r in client.search_runs([experiment_id], filter_string=job_tags):
            if r.info.status == "RUNNING":
                client.set_terminated(r.info.run_id, "KILLED")
            client.set_tag(r.info.run_id, "optuna_state", "FAIL")
    job = Job(
        project=args.project,
        study_name=name,
        storage=args.storage,
        space=space,
        overrides=list(args.overrides),
        headline=cfg.tracking.headline_metric,
        experiment_id=experiment_id,
        parent_run_id=parent,
        output_dir=str(Path(cfg.paths.output_dir) / "sweeps" / name),
        seed=int(space.sampler.pop("seed", cfg.seed)),
    )
    status, best = "FAILED", None
    ctx = mp.get_context("spawn")
    # `tools.sweep.worker`, not `__main__.worker`: spawned workers import it by that name
    from tools.sweep import worker

    procs: list[Any] = []
    try:
        if left:
            budget = ctx.Value("i", left)
            n_jobs = min(args.n_jobs, left)
            if n_jobs > 1 and done == 0:  # the first trial creates the data set and folds alone
                budget.value = 1
                procs.append(ctx.Process(target=worker, args=(job, 0, budget)))
                procs[0].start()
                procs[0].join()
                budget.value = left - 1
            more = [ctx.Process(target=worker, args=(job, i, budget)) for i in range(n_jobs)]
            procs += more
            for p in more:
                p.start()
            for p in more:
                p.join()
            bad = [p.exitcode for p in procs if p.exitcode]
            if bad:
                raise RuntimeError(f"sweep workers exited with {bad}")
        best = _finish_parent(client, parent, study, space, job.headline)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        for p in procs:
            if p.is_alive():
                p.terminate()
                p.join(10)
        client.set_terminated(parent, status)
    n = len(finished(study))
    print(f"MLflow: experiment '{cfg.tracking.experiment}' sweep run {parent}")
    if best is None:
        print(f"{n} finished trials, none complete")
    else:
        print(f"{n} finished trials; best trial {best.number}: {job.headline} = {best.value:.4f}")
        for k, v in best.params.items():
            print(f"  {k}={hydra_value(v)}")
    return study


def main(argv: Sequence[str] | None = None) -> None:
    from shared.cli import expected_errors

    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    with expected_errors():
        sweep(parse_args(argv))


if __name__ == "__main__":
    main(sys.argv[1:])
