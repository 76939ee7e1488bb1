"""Multi-host training for real: two processes joined by ``jax.distributed`` on 127.0.0.1.

Each process has one CPU device; the two form one 2-device data-parallel mesh, and the gradient
all-reduce crosses the process boundary (XLA's CPU collectives, gloo over TCP).

Tolerances: both runs are float64 and see the same global batches; they differ only in where the
two sub-batch gradients are summed (across processes vs. inside one device), which changes the
rounding of the sums by a few ulps per step. Measured: 3e-16 absolute after 4 Adam steps. 1e-12
relative (as for the 4-vs-1 simulated devices in test_sharding.py) leaves room for that and still
fails for any real difference: a lost or doubled sub-batch, a wrong step, a wrong resume.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import jax
import numpy as np
import pytest

from rsajax.train import Checkpoints, train
from tests.train.helpers import tiny_config, write_dataset
from tests.train.multihost_worker import STOPPED

REPO = Path(__file__).resolve().parents[2]
#: 10 structures, 2 held out: 8 training structures in global batches of 4 -> 2 steps per epoch.
EPOCHS, STOP_AFTER = 2, 3
RTOL, ATOL = 1e-12, 1e-14


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_two_processes(*args: str) -> list[tuple[int, str, str]]:
    """Processes 0 and 1 of ``multihost_worker MODE ...``; (returncode, stdout, stderr) of each.

    ``args`` are the worker's arguments with ``{id}`` for the process id and ``{address}`` for the
    coordinator (a free port on 127.0.0.1).
    """
    address = f"127.0.0.1:{free_port()}"
    # One CPU device per process and no inherited device flags: the mesh must span processes.
    env = dict(os.environ, JAX_PLATFORMS="cpu", XLA_FLAGS="", PYTHONPATH=str(REPO))
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "tests.train.multihost_worker",
                *(a.format(id=i, address=address) for a in args),
            ],
            cwd=REPO,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    try:
        outputs = [proc.communicate(timeout=400) for proc in procs]
    finally:
        for proc in procs:  # a process left waiting for its peer must not outlive the test
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return [(proc.returncode, *output) for proc, output in zip(procs, outputs, strict=True)]


def last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def test_one_step_across_two_processes_matches_one_device():
    """The cheap check: one sharded train step whose all-reduce crosses processes."""
    done = run_two_processes("step", "{id}", "2", "{address}")
    for code, _, stderr in done:
        assert code == 0, stderr[-3000:]
    records = [last_json(stdout) for _, stdout, _ in done]
    assert [r["process"] for r in records] == [0, 1]
    assert records[0]["digest"] == records[1]["digest"]  # one replicated state, the same bits
    for record in records:
        assert record["devices_all"] == 2 and record["sub_batch_shape"][0] == 2, record
        assert record["update"] > 1e-3  # the step really moved the parameters
    assert records[0]["devices_own"] == 1
    assert records[0]["max_diff"] < 1e-12, records[0]  # process 0 also stepped on its own device


@pytest.mark.slow  # four compiling processes: ~40 s CPU, 1-2 min wall on a shared 2-core machine
def test_two_processes_train_stop_resume_and_match_one_process(tmp_path):
    data = write_dataset(tmp_path / "emt.xyz", 10, seed=0)
    config = tiny_config(
        tmp_path,
        data,
        output_dir=str(tmp_path / "multi"),
        epochs=EPOCHS,
        model={"num_interactions": 1},
        checkpoint={"every_steps": 1, "async_save": False},
    )
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    worker = ("train", str(config_path), "{id}", "2", "{address}", str(tmp_path / "p{id}.npz"))

    # Stopped mid-epoch 1, right after the checkpoint of step 3, then resumed by new processes.
    for code, _, stderr in run_two_processes(*worker, "--stop-after", str(STOP_AFTER)):
        assert code == STOPPED, stderr[-3000:]
    checkpoints = Checkpoints(tmp_path / "multi" / "checkpoints")
    assert checkpoints.latest() == STOP_AFTER
    stopped = jax.tree_util.tree_leaves(checkpoints.read_params())
    checkpoints.close()
    resumed = run_two_processes(*worker, "--resume")
    for code, _, stderr in resumed:
        assert code == 0, stderr[-3000:]
        assert "config keys changed" not in stderr  # process ids differ; that is no change
    records = [last_json(stdout) for _, stdout, _ in resumed]
    assert [r["process"] for r in records] == [0, 1]
    assert all(r["devices"] == 2 and r["steps"] == 2 * EPOCHS for r in records), records
    files = [np.load(tmp_path / f"p{i}.npz") for i in range(2)]
    for name in files[0].files:  # replicated outputs: the same bits on both processes
        np.testing.assert_array_equal(files[0][name], files[1][name])
    log = (tmp_path / "multi" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["epoch"] for line in log] == list(range(-1, EPOCHS))

    single = train(dict(config, output_dir=str(tmp_path / "single"), parallel={"sub_batches": 2}))
    assert single.steps == 2 * EPOCHS
    flat = jax.tree_util.tree_flatten_with_path(single.params)[0]
    reference = {jax.tree_util.keystr(path): np.asarray(x) for path, x in flat}
    assert sorted(reference) == sorted(files[0].files)
    # The resumed step moved the parameters, and the run equals one process (module docstring).
    moved = max(np.max(np.abs(a - b)) for a, b in zip(reference.values(), stopped, strict=True))
    assert moved > 1e-4
    for name, value in reference.items():
        np.testing.assert_allclose(files[0][name], value, rtol=RTOL, atol=ATOL, err_msg=name)
