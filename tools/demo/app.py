"""`make demo`: one Gradio tab per project, each serving that project's registered champion.

python -m tools.demo.app [key=value ...]   (keys: configs/demo/demo.yaml)

Gradio keeps uploads and rendered outputs in GRADIO_TEMP_DIR; the app points it at a fresh
temporary folder (removed on exit, Ctrl-C or SIGTERM), so nothing is written anywhere else.
The server binds to `host` (127.0.0.1 unless configured).
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sys
import tempfile

from shared.logging import get_logger
from tools.demo.champions import Champion, find_champion
from tools.demo.config import DemoConfig, load
from tools.demo.tabs import TABS
from tools.demo.uploads import refusal_js

log = get_logger(__name__)


def load_champions(cfg: DemoConfig) -> list[tuple[str, Champion]]:
    """(tab title, champion) per configured project, models loaded."""
    out = []
    for tab in cfg.projects:
        champ = find_champion(tab.name, tab.make_target, list(cfg.experiments))
        log.info("%s: %s", tab.name, champ.uri or f"none (make {tab.make_target})")
        out.append((tab.title, champ))
    return out


def build_app(cfg: DemoConfig, champions: list[tuple[str, Champion]]):
    """The Gradio Blocks app: a header, then one tab per project."""
    import gradio as gr

    with gr.Blocks(
        title=cfg.title, analytics_enabled=False, delete_cache=tuple(cfg.uploads.cache_delete)
    ) as app:
        gr.Markdown(f"# {cfg.title}\nEach tab serves its project's `champion` from MLflow.")
        with gr.Tabs():
            for title, champ in champions:
                with gr.Tab(title, id=champ.project, elem_id=f"tab-{champ.project}"):
                    try:
                        TABS[champ.project](champ, cfg)
                    except Exception as exc:  # one broken model must not take the others down
                        log.exception("%s tab failed", champ.project)
                        gr.Markdown(f"**This tab could not be built:** {exc}")
    return app


def free_port(host: str) -> int:
    """A port the OS reports free on `host` (for `port=0`)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _interrupt(signum: int, frame) -> None:  # noqa: ARG001
    """SIGTERM as Ctrl-C: Gradio closes its server and `main`'s cleanup runs (the default
    action would kill the process and leave the temporary folder behind)."""
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> None:
    cfg = load(list(sys.argv[1:] if argv is None else argv))
    temp = tempfile.mkdtemp(prefix="demo-")
    os.environ["GRADIO_TEMP_DIR"] = temp
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    log.info("uploads and outputs go to %s (removed on exit)", temp)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        app = build_app(cfg, load_champions(cfg))
        app.queue(default_concurrency_limit=1)
        app.launch(
            server_name=cfg.host,
            server_port=cfg.port or free_port(cfg.host),
            max_file_size=cfg.uploads.max_bytes,
            show_error=True,
            footer_links=[],
            ssr_mode=False,
            js=refusal_js(cfg.uploads),
        )
    except KeyboardInterrupt:
        log.info("interrupted: stopping")
    finally:
        signal.signal(signal.SIGTERM, previous)  # in-process callers (tests) get theirs back
        shutil.rmtree(temp, ignore_errors=True)


if __name__ == "__main__":
    main()
