"""to_torchrun_script: run by the torchrun that torch installs, it reproduces run_parallel."""

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import lib
from lib.engine.parallel import run_parallel
from lib.io.torchrun import to_torchrun_script

TORCHRUN = Path(sys.executable).with_name("torchrun")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _command(script: Path, workers: int) -> list[str]:
    """torchrun on 127.0.0.1 only: in a network namespace of its own (nothing but loopback) where
    the machine allows one, else with a rendezvous endpoint on 127.0.0.1."""
    inner = [str(TORCHRUN), "--nnodes=1", f"--nproc_per_node={workers}", "--rdzv-backend=c10d"]
    inner += [f"--rdzv-endpoint=127.0.0.1:{_free_port()}", str(script)]
    probe = ["unshare", "-rn", "sh", "-c", "ip link set lo up"]
    if shutil.which("unshare") and shutil.which("ip") and subprocess.run(probe).returncode == 0:
        return ["unshare", "-rn", "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *inner]
    return inner


@pytest.mark.timeout(300)
def test_the_script_reproduces_run_parallel(tmp_path):
    data = lib.datasets.linear(m=23, n=2, noise=0.1, seed=3)  # uneven: one row of padding
    cfg = lib.Config(lr=0.05, batch_size=4, iterations=30, optimizer="adam", clip_grad_norm=0.5)
    script = tmp_path / "ddp_twins.py"
    script.write_text(to_torchrun_script(data, cfg, workers=2, set_epoch=False))
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "OMP_NUM_THREADS": "1"}
    env.pop("PYTHONPATH", None)  # the script needs numpy and torch, not lib
    process = subprocess.Popen(_command(script, 2), cwd=tmp_path, env=env, text=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               start_new_session=True)  # fmt: skip
    try:
        out, err = process.communicate(timeout=240)
    finally:  # the whole session, torchrun's workers with it
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
    assert process.returncode == 0, err[-3000:]
    weights = json.loads(out.strip().splitlines()[-1])
    result = run_parallel(data, cfg, workers=2, set_epoch=False)
    assert np.abs(np.array(weights["torch"]) - result.torch.weights[-1]).max() < 1e-10
    assert np.abs(np.array(weights["manual"]) - result.manual.weights[-1]).max() < 1e-10
    assert np.abs(np.array(weights["manual"]) - np.array(weights["torch"])).max() < 1e-10


def test_the_script_refuses_what_run_parallel_refuses():
    with pytest.raises(ValueError, match="workers must be a whole number from 2 to 4"):
        to_torchrun_script(lib.datasets.linear(m=10, n=1), lib.Config(), workers=8)
