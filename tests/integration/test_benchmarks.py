"""The benchmark scripts run end to end at tiny sizes and print a figure per project."""

import os
import re
import subprocess
import sys

import pytest

from tests.helpers import REPO

GPU_BENCH_PROJECTS = ("image_classifier", "retrieval_qa", "captioning")


@pytest.mark.slow
def test_gpu_sh_cpu_prints_a_figure_per_torch_project():
    env = {**os.environ, "PY": sys.executable, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        ["bash", "benchmarks/gpu.sh", "--cpu"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    for project in GPU_BENCH_PROJECTS:
        line = re.search(
            rf"^gpu-bench {project} \| CPU \| fp32 \| .* \| ([\d,.]+) \w+/s \|", proc.stdout, re.M
        )
        assert line, f"no figure for {project} in:\n{proc.stdout}"
        assert float(line.group(1).replace(",", "")) > 0


@pytest.mark.slow
def test_image_classifier_benchmark_reports_the_cache_and_the_loader_model_ratio(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            "benchmarks/image_classifier.py",
            "--n", "24", "--size", "32", "--batch", "4", "--steps", "2", "--workers", "0",
            "--backbone", "test_efficientnet", "--data", str(tmp_path),
        ],
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout
    for key in (
        "decode cache build",
        "decode cache size",
        "loader (cache, train) / model",
        "EXTRAPOLATED",
    ):
        assert key in out, out
    assert len(list((tmp_path / "cache").iterdir())) == 2  # the cache and its lock file
