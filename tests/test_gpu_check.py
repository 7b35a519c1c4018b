"""benchmarks/gpu_check.sh where torch sees no CUDA device: one line saying so, {"cuda": false}
under $OUT, exit code 3 (on a GPU machine it runs the gpu tests and bench_gpu.py)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.heavy  # runs the script (a Python subprocess)
@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA device: the script would run the whole check")
def test_without_cuda_the_check_says_so_and_exits_3(tmp_path):
    env = {**os.environ, "OUT": str(tmp_path), "PYTHON": sys.executable}
    result = subprocess.run(["bash", "benchmarks/gpu_check.sh"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert result.returncode == 3, result.stderr
    assert result.stderr.strip().splitlines() == [
        "gpu_check: torch sees no CUDA device (torch.cuda.is_available() is false, or torch is missing): "
        "nothing to check here; run it on a machine with a GPU"
    ]
    assert json.loads((tmp_path / "gpu_check.json").read_text()) == {"cuda": False}


def test_bench_gpu_without_cuda_exits_with_a_clear_message(capsys):
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import bench_gpu
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    if torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    with pytest.raises(SystemExit) as stopped:
        bench_gpu.main(["--shapes", "tiny"])
    assert stopped.value.code == 3
    assert capsys.readouterr().err.strip() == bench_gpu.NO_CUDA
