"""Per-run artifacts of captioning: a page of test images with generated and reference captions."""

from __future__ import annotations

import base64
import html
from pathlib import Path

import pandas as pd

from projects.captioning.grounding import is_grounded
from shared.images import FolderImageStore
from shared.tracking import get_mlflow, is_rank_zero


def _mark(caption: str, truth: dict | None) -> str:
    """The caption, followed by whether it is true of the image (generated data only)."""
    if truth is None:
        return html.escape(caption)
    ok = is_grounded(caption, truth)
    return (
        f"{html.escape(caption)} <span class='{'ok' if ok else 'no'}'>{'✔' if ok else '✘'}</span>"
    )


def caption_page(
    frame: pd.DataFrame,
    store: FolderImageStore,
    gen: dict[str, list[str]],
    scenes: dict[str, dict] | None = None,
    n: int = 16,
) -> str:
    """An HTML page: each image with its beam and greedy captions and its references; on
    generated data each caption is marked true (✔) or false (✘) of what was drawn."""
    cells = []
    for i in range(min(n, len(frame))):
        row = frame.iloc[i]
        truth = None if scenes is None else scenes[Path(row["path"]).name]
        b64 = base64.b64encode(store.read_bytes(row["path"])).decode()
        refs = "".join(f"<li>{html.escape(r)}</li>" for r in row["raw"])
        cells.append(
            f"<div class='c'><img src='data:image/jpeg;base64,{b64}'>"
            f"<p><b>beam:</b> {_mark(gen['beam'][i], truth)}<br>"
            f"<b>greedy:</b> {_mark(gen['greedy'][i], truth)}</p><ul>{refs}</ul></div>"
        )
    style = (
        "<style>body{font-family:sans-serif}.c{display:inline-block;width:300px;"
        "vertical-align:top;margin:8px}img{width:160px}.ok{color:#080}.no{color:#c00}</style>"
    )
    return f"<html><head>{style}</head><body><h1>Test captions</h1>{''.join(cells)}</body></html>"


def log_test_captions(
    frame: pd.DataFrame,
    store: FolderImageStore,
    gen: dict[str, list[str]],
    scenes: dict[str, dict] | None = None,
) -> None:
    """`captions.html` and `test_captions.csv` (every test image's greedy and beam caption,
    and on generated data whether each is true of its image)."""
    if not is_rank_zero():  # DDP workers have no run
        return
    mlflow = get_mlflow()
    mlflow.log_text(caption_page(frame, store, gen, scenes), "captions.html")
    table = pd.DataFrame({"path": frame["path"], **gen})
    if scenes is not None:
        truths = [scenes[Path(p).name] for p in frame["path"]]
        for method, caps in gen.items():
            table[f"{method}_grounded"] = [is_grounded(c, t) for c, t in zip(caps, truths)]
    mlflow.log_text(table.to_csv(index=False), "test_captions.csv")


def log_preprocessing(preprocessing: dict) -> None:
    """`preprocessing.json`: the size, interpolation, mean and std training used (the config
    may say null = the encoder's own; this is what that resolved to)."""
    if not is_rank_zero():
        return
    get_mlflow().log_dict(preprocessing, "preprocessing.json")
