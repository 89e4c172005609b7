"""Ctrl-C and SIGTERM end a tracked run KILLED, also when Lightning re-raises them as SystemExit;
a resumed run drops the `error` tag of the attempt it continues."""

import os
import signal
import uuid

import lightning as L
import mlflow
import pytest
import torch
from lightning.pytorch.callbacks import Callback
from torch.utils.data import DataLoader, TensorDataset

from shared import interrupts, tracking


class _Tiny(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.layer = torch.nn.Linear(2, 1)

    def training_step(self, batch, batch_idx):
        return self.layer(batch[0]).pow(2).mean()

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


class _Interrupt(Callback):
    """At the third batch: a Ctrl-C (KeyboardInterrupt) or a real SIGTERM to this process."""

    def __init__(self, how):
        self.how = how

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if batch_idx == 2:
            if self.how == "sigterm":
                os.kill(os.getpid(), signal.SIGTERM)
            else:
                raise KeyboardInterrupt


def _fit(callback):
    data = DataLoader(TensorDataset(torch.randn(32, 2)), batch_size=4)
    trainer = L.Trainer(
        max_epochs=1,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[callback],
    )
    trainer.fit(_Tiny(), data)
    return trainer


def _status(run):
    r = mlflow.MlflowClient().get_run(run.info.run_id)
    return r.info.status, r.data.tags.get("error")


@pytest.mark.parametrize("how", ["ctrl-c", "sigterm"])
def test_an_interrupt_during_a_lightning_fit_ends_the_run_killed(mlflow_store, how):
    exp = f"test-{uuid.uuid4().hex[:8]}"
    with pytest.raises(SystemExit), tracking.start_run(exp) as parent:  # Lightning's sys.exit(1)
        with tracking.start_run(exp, nested=True) as fold:
            _fit(_Interrupt(how))
    for run in (fold, parent):
        status, error = _status(run)
        assert status == "KILLED"
        assert error == ("Terminated: SIGTERM" if how == "sigterm" else "KeyboardInterrupt")
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handler restored
    assert mlflow.active_run() is None


def test_sigterm_outside_a_fit_ends_the_run_killed(mlflow_store):
    with pytest.raises(interrupts.Terminated), tracking.start_run("test-sigterm") as run:
        os.kill(os.getpid(), signal.SIGTERM)
    assert _status(run) == ("KILLED", "Terminated: SIGTERM")


def test_other_exits_still_end_the_run_failed(mlflow_store):
    with pytest.raises(SystemExit), tracking.start_run("test-exit") as run:
        raise SystemExit(3)
    assert _status(run)[0] == "FAILED"


def test_a_resumed_run_that_finishes_keeps_no_error_tag(mlflow_store):
    with pytest.raises(KeyboardInterrupt), tracking.start_run("test-resume") as run:
        raise KeyboardInterrupt
    assert _status(run) == ("KILLED", "KeyboardInterrupt")
    with tracking.start_run("test-resume", run_id=run.info.run_id):
        pass
    assert _status(run) == ("FINISHED", None)
