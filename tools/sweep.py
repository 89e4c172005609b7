"""Hyper-parameter sweeps: a small Optuna driver over any project's `run(cfg)`, with nested
selection: the numbers a sweep reports come from folds its objective never saw.

python -m tools.sweep --project tabular_gbm --trials 20 [--n-jobs 2] [--space default]
    [--storage postgresql+psycopg2://.../optuna] [key=value ...]

The search space is `configs/<project>/hparams_search/<space>.yaml` (Hydra keys -> Optuna
distributions; read here, not composed by Hydra). Every trial trains on the other folds and
scores only the space's `holdout_fold` (`cv.folds=[H]`); its `objective` (the task metric,
pAUC for the ISIC projects) on that fold is what Optuna maximises. The best configuration is
then re-run once with the holdout set aside (`data.holdout_fold=H`: never trained on, never
scored): that run's OOF metrics are the sweep's result, and it registers like any run. The
parent run logs both, `selection_<objective>` (holdout, optimistic: it was chosen on) and
`reported_<objective>` (the re-run's OOF), and their difference `optimism_<objective>`.

The study lives in a database (`sweeps.db` at the repo root unless `--storage`), so a killed
sweep resumes where it stopped: finished trials count towards `--trials`, a trial left RUNNING
by a dead process is marked FAIL (its MLflow runs KILLED) and retried with its parameters, and
a re-run that did not finish runs again. Trials run in `--n-jobs` worker processes; they never
register models (`tracking.register` is false). Pipelines call `shared.pruning.report(value,
step)` after each fold or epoch: a no-op outside a sweep, MedianPruner's input inside one.
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
RERUN_ATTR = "rerun"  # {"trial", "run_id"} of the finished re-run of the best trial


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
    objective: str


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
        f"cv.folds=[{job.space.holdout_fold}]",  # train on the others, score the holdout only
    ]


def _rerun_overrides(job: Job, values: Mapping[str, Any]) -> list[str]:
    """The chosen configuration with the holdout set aside: the numbers the sweep reports."""
    return [
        *job.overrides,
        *job.space.overrides,
        *(f"{k}={hydra_value(v)}" for k, v in values.items()),
        f"data.holdout_fold={job.space.holdout_fold}",
        "tracking.run_name=rerun",
        f"++tracking.tags.sweep={hydra_value(job.study_name)}",
        "++tracking.tags.sweep_role=rerun",
        f"paths.output_dir={job.output_dir}/rerun",
    ]


def _kill_runs(client: Any, experiment_id: str, filter_string: str) -> list[str]:
    """End the RUNNING runs matching `filter_string` and their RUNNING descendants as KILLED
    (a dead trial's fold runs would otherwise stay RUNNING for ever)."""
    killed = []
    todo = [r.info for r in client.search_runs([experiment_id], filter_string=filter_string)]
    while todo:
        info = todo.pop()
        if info.status == "RUNNING":
            client.set_terminated(info.run_id, "KILLED")
            killed.append(info.run_id)
        children = f"tags.mlflow.parentRunId = '{info.run_id}'"
        todo += [r.info for r in client.search_runs([experiment_id], filter_string=children)]
    return killed


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
        if state in ("PRUNED", "FAIL"):  # a pruned trial stops inside a fold's nested run
            _kill_runs(client, job.experiment_id, f"tags.mlflow.parentRunId = '{r.info.run_id}'")
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
        pruner=(
            optuna.pruners.MedianPruner(**job.space.pruner)
            if job.space.pruner is not None
            else optuna.pruners.NopPruner()
        ),
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
                value = float(run(cfg)[job.objective])
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
            "worker %d: trial %d %s, holdout %s=%s: %s",
            index,
            trial.number,
            state.name,
            job.objective,
            value,
            shown,
        )


def rerun_worker(job: Job, values: dict[str, Any]) -> None:
    """The chosen configuration once more, the holdout fold set aside (a spawned process)."""
    _die_with_parent()
    from shared import tracking

    os.environ[tracking.SWEEP_PARENT_ENV] = job.parent_run_id
    train_module(job.project).run(compose(job.project, _rerun_overrides(job, values)))


def _rerun(ctx: Any, client: Any, job: Job, study: Any) -> Any:
    """Re-run the best trial's configuration without the holdout (again after a resume if the
    last re-run did not finish or another trial is now best); returns that MLflow run."""
    best = study.best_trial
    tags = f"tags.sweep = '{job.study_name}' and tags.sweep_role = 'rerun'"
    _kill_runs(client, job.experiment_id, tags + " and attributes.status = 'RUNNING'")
    done = study.user_attrs.get(RERUN_ATTR) or {}
    if done.get("trial") == best.number:
        return client.get_run(done["run_id"])
    from tools.sweep import rerun_worker as target  # by this name in the spawned process

    print(f"re-running trial {best.number}, fold {job.space.holdout_fold} set aside", flush=True)
    proc = ctx.Process(target=target, args=(job, dict(best.params)))
    proc.start()
    proc.join()
    if proc.exitcode:
        raise RuntimeError(f"the re-run of trial {best.number} exited with {proc.exitcode}")
    runs = client.search_runs(
        [job.experiment_id],
        filter_string=tags + " and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    study.set_user_attr(RERUN_ATTR, {"trial": best.number, "run_id": runs[0].info.run_id})
    return runs[0]


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


def _finish_parent(client: Any, run_id: str, study: Any, job: Job, rerun: Any) -> None:
    """Counts, the best trial's parameters, the selection and reported numbers, the history.

    `selection_<objective>`: the best trial's score on the holdout fold it was chosen on.
    `reported_<objective>` (and the headline): the re-run's OOF, on folds no trial scored.
    """
    import warnings

    from mlflow.entities import Metric, RunTag
    from optuna.trial import TrialState

    counts = {s: len(study.get_trials(deepcopy=False, states=(s,))) for s in TrialState}
    ts = int(time.time() * 1000)
    metrics = [Metric(f"n_{s.name.lower()}", float(n), ts, 0) for s, n in counts.items()]
    tags: list[Any] = []
    if rerun is not None:
        best = study.best_trial
        objective, reported = job.objective, rerun.data.metrics[job.objective]
        tags = [RunTag(f"best.{k}", str(v)) for k, v in best.params.items()]
        tags += [
            RunTag("best_trial", str(best.number)),
            RunTag("best_run_id", str(best.user_attrs.get("mlflow_run_id", ""))),
            RunTag("rerun_run_id", rerun.info.run_id),
            RunTag("holdout_fold", str(job.space.holdout_fold)),
        ]
        values = {
            f"selection_{objective}": float(best.value),
            f"reported_{objective}": reported,
            f"optimism_{objective}": float(best.value) - reported,
            f"reported_{job.headline}": rerun.data.metrics[job.headline],
        }
        metrics += [Metric(k, v, ts, 0) for k, v in values.items()]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
            from optuna.visualization.matplotlib import plot_optimization_history

            ax = plot_optimization_history(study, target_name=f"holdout {objective}")
            ax.axhline(reported, color="black", linestyle="--", label="re-run OOF (reported)")
            ax.legend(loc="lower right")
            ax.figure.set_size_inches(8, 5)
            client.log_figure(run_id, ax.figure, "optimization_history.png")
            plt.close(ax.figure)
    client.log_batch(run_id, metrics=metrics, tags=tags)
    client.log_text(run_id, study.trials_dataframe().to_csv(index=False), "trials.csv")


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
    if not 0 <= space.holdout_fold < cfg.data.n_folds:
        raise SweepError(
            f"search space {space.name!r}: holdout_fold {space.holdout_fold} is not a fold "
            f"0..{cfg.data.n_folds - 1} of data.folds_file"
        )
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
    for number in retried:  # their MLflow runs (a trial's and its folds') died with it
        job_tags = f"tags.sweep = '{name}' and tags.optuna_trial = '{number}'"
        _kill_runs(client, experiment_id, job_tags)
        for r in client.search_runs([experiment_id], filter_string=job_tags):
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
        objective=space.objective,
    )
    status, rerun = "FAILED", None
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
        if any(t.state.name == "COMPLETE" for t in study.get_trials(deepcopy=False)):
            rerun = _rerun(ctx, client, job, study)
        _finish_parent(client, parent, study, job, rerun)
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
    if rerun is None:
        print(f"{n} finished trials, none complete")
    else:
        best, o = study.best_trial, job.objective
        print(
            f"{n} finished trials; best trial {best.number}: {o} = {best.value:.4f} on the "
            f"holdout fold {space.holdout_fold} (chosen on it); re-run without that fold: "
            f"OOF {o} = {rerun.data.metrics[o]:.4f} (run {rerun.info.run_id})"
        )
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
