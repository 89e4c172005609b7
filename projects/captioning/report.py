"""Per-run artifacts of captioning: a page of test images with generated and reference captions."""

from __future__ import annotations

import base64
import html

import pandas as pd

from shared.images import FolderImageStore
from shared.tracking import get_mlflow, is_rank_zero


def caption_page(
    frame: pd.DataFrame, store: FolderImageStore, gen: dict[str, list[str]], n: int = 16
) -> str:
    """An HTML page: each image with its beam and greedy captions and its references."""
    cells = []
    for i in range(min(n, len(frame))):
        row = frame.iloc[i]
        b64 = base64.b64encode(store.read_bytes(row["path"])).decode()
        refs = "".join(f"<li>{html.escape(r)}</li>" for r in row["raw"])
        cells.append(
            f"<div class='c'><img src='data:image/jpeg;base64,{b64}'>"
            f"<p><b>beam:</b> {html.escape(gen['beam'][i])}<br>"
            f"<b>greedy:</b> {html.escape(gen['greedy'][i])}</p><ul>{refs}</ul></div>"
        )
    style = (
        "<style>body{font-family:sans-serif}.c{display:inline-block;width:300px;"
        "vertical-align:top;margin:8px}img{width:160px}</style>"
    )
    return f"<html><head>{style}</head><body><h1>Test captions</h1>{''.join(cells)}</body></html>"


def log_test_captions(frame: pd.DataFrame, store: FolderImageStore, gen: dict[str, list[str]]):
    """`captions.html` and `test_captions.csv` (every test image's greedy and beam caption)."""
    if not is_rank_zero():  # DDP workers have no run
        return
    mlflow = get_mlflow()
    mlflow.log_text(caption_page(frame, store, gen), "captions.html")
    table = pd.DataFrame({"path": frame["path"], **gen})
    mlflow.log_text(table.to_csv(index=False), "test_captions.csv")


def log_preprocessing(preprocessing: dict) -> None:
    """`preprocessing.json`: the size, interpolation, mean and std training used (the config
    may say null = the encoder's own; this is what that resolved to)."""
    if not is_rank_zero():
        return
    get_mlflow().log_dict(preprocessing, "preprocessing.json")
