"""Which registered model each tab serves, and the line that tells the user which it is.

A tab serves `models:/<name>@champion` for the first experiment in `experiments` (full, then
smoke) whose registered model has a champion; the names come from each project's own config
(`tracking.model_name`), so a renamed data set needs no change here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from shared import tracking
from shared.tracking import CHAMPION, get_mlflow, tracking_uri
from tools.registry import model_name


@dataclass
class Champion:
    """A project's served model, or (model is None) what to run to create one."""

    project: str
    make_target: str
    candidates: list[str]  # registered names tried, in order
    name: str | None = None
    version: str | None = None
    run_id: str | None = None
    data_set: str | None = None
    metric: str | None = None
    value: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    model: Any = None  # the loaded pyfunc
    error: str | None = None  # a champion exists but could not be loaded

    @property
    def uri(self) -> str | None:
        return f"models:/{self.name}@{CHAMPION}" if self.name else None


def find_champion(
    project: str, make_target: str, experiments: list[str], load: bool = True
) -> Champion:
    """The first registered name with a `champion` alias, its version tags, and the model."""
    mlflow = get_mlflow()
    data_sets = dict(model_name(project, e) for e in experiments)
    champ = Champion(project, make_target, list(data_sets))
    found = tracking.find_champion(mlflow.MlflowClient(), data_sets)
    if found is not None:
        name, version = found
        data_set = data_sets[name]
        tags = dict(version.tags)
        metric = tags.get("validation_metric")
        champ.name, champ.version, champ.data_set, champ.tags = (
            name,
            version.version,
            data_set,
            tags,
        )
        champ.run_id = tags.get("run_id") or version.run_id
        champ.metric, champ.value = metric, tags.get(metric) if metric else None
        if load:
            try:
                champ.model = mlflow.pyfunc.load_model(champ.uri)
            except Exception as exc:  # a broken artifact: say so in the tab, serve the others
                champ.error = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    return champ


def describe(champ: Champion) -> str:
    """Markdown saying which model the tab serves, or which `make` target creates one."""
    if champ.name is None:
        tried = ", ".join(f"`{n}@{CHAMPION}`" for n in champ.candidates)
        return (
            f"**No registered model for {champ.project} yet** (looked for {tried} in "
            f"`{tracking_uri()}`).\n\nCreate one with `make {champ.make_target}` "
            "(or `make smoke` for all four projects), then restart the demo."
        )
    score = f"{champ.metric} = {float(champ.value):.4f}" if champ.value else "not recorded"
    kind = "smoke (generated) data" if champ.name.endswith("-smoke") else "full data"
    text = (
        f"**Model** `{champ.name}` version {champ.version} (`@{CHAMPION}`) · "
        f"**run** `{champ.run_id}` · **data set** `{champ.data_set}` ({kind}) · "
        f"**validation** {score}"
    )
    if champ.error:
        text += f"\n\n**The model could not be loaded:** {champ.error}"
    return text
