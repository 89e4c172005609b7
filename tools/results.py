"""Print the latest top-level run of each project: headline metric, run id, status, wall time.

`make smoke` ends with `python -m tools.results --experiment smoke`.
"""

from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table

from shared.tracking import get_mlflow
from tools.registry import ML_PROJECTS


def latest_runs(experiment_tag: str | None = None) -> list[dict]:
    """One row per project that has a top-level run (optionally only `experiment=<tag>` runs)."""
    mlflow = get_mlflow()
    rows = []
    for project in ML_PROJECTS:
        exp = mlflow.get_experiment_by_name(project)
        if exp is None:
            continue
        query = "tags.mlflow.parentRunId IS NULL"
        if experiment_tag:
            query = f"tags.experiment = '{experiment_tag}'"
        runs = mlflow.search_runs(
            [exp.experiment_id],
            filter_string=query,
            order_by=["start_time DESC"],
            max_results=20,
            output_format="list",
        )
        runs = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
        latest: dict[str, object] = {}
        for r in runs:  # newest first: keep the latest run of each run name
            latest.setdefault(r.info.run_name, r)
        for run in latest.values():
            rows.append(_row(project, run))
    return rows


def _row(project: str, run) -> dict:
    metric = run.data.tags.get("headline_metric", "")
    value = run.data.metrics.get(metric)
    end = run.info.end_time or run.info.start_time
    return {
        "project": project,
        "run": run.info.run_name,
        "metric": metric,
        "value": value,
        "run_id": run.info.run_id,
        "status": run.info.status,
        "wall_s": (end - run.info.start_time) / 1000.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--experiment", default=None, help="only runs tagged experiment=NAME")
    args = parser.parse_args()
    rows = latest_runs(args.experiment)
    console = Console(width=150)
    if not rows:
        console.print("No runs in the MLflow store yet.")
        return
    table = Table(
        title=f"Latest runs{f' (experiment={args.experiment})' if args.experiment else ''}"
    )
    for col in ("project", "run", "headline metric", "value", "run id", "status", "wall time"):
        table.add_column(col)
    for r in rows:
        value = "-" if r["value"] is None else f"{r['value']:.4f}"
        table.add_row(
            r["project"],
            r["run"],
            r["metric"],
            value,
            r["run_id"],
            r["status"],
            f"{r['wall_s']:.0f} s",
        )
    console.print(table)


if __name__ == "__main__":
    main()
