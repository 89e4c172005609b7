"""Lightning DDP under Hydra: 2 CPU processes (gloo) share one output folder and one MLflow run."""

import subprocess

import mlflow
import pytest

from tests.helpers import REPO, store_env, tiny_train_command


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_logs_one_run_in_one_folder(tmp_path):
    store = f"sqlite:///{tmp_path / 'mlflow.db'}"
    cmd = tiny_train_command(
        "image_classifier",
        tmp_path,
        "trainer=ddp_cpu",
        "trainer.max_epochs=1",
        "cv.folds=[0]",
        "tracking.register=false",
    )
    proc = subprocess.run(
        cmd, cwd=REPO, env=store_env(tmp_path), capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    run_dirs = list((tmp_path / "outputs" / "image_classifier").iterdir())
    assert len(run_dirs) == 1, run_dirs  # no second folder for rank 1
    client = mlflow.MlflowClient(tracking_uri=store)
    exp = client.get_experiment_by_name("image_classifier")
    runs = client.search_runs([exp.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert parents[0].data.metrics["n_folds_done"] == 1
    assert len(runs) == 2  # the parent and fold 0, logged by rank 0 only
