"""One step on 4 simulated CPU devices equals one step on 1 device with the same global batch.

XLA flags must be set before jax starts, so the check runs in a fresh process with
``XLA_FLAGS=--xla_force_host_platform_device_count=4`` (see sharding_check.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

from rsajax.data import atoms_to_record
from rsajax.train.batches import GlobalBatches
from tests.train.helpers import emt_structures

REPO = Path(__file__).resolve().parents[2]


def test_four_devices_match_one_device():
    env = dict(
        os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4", JAX_PLATFORMS="cpu"
    )
    proc = subprocess.run(
        [sys.executable, "-m", "tests.train.sharding_check"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["devices_4"] == 4 and result["devices_1"] == 1
    assert result["sub_batch_shape"][0] == 4
    assert result["update"] > 1e-3  # the step really moved the parameters
    assert result["max_diff"] < 1e-12, result


def test_global_batches_cover_each_epoch_once_with_equal_caps():
    records = [atoms_to_record(a, 4.0) for a in emt_structures(11, seed=2)]
    batches = GlobalBatches(records, batch_size=4, sub_batches=2, num_buckets=2, seed=5)
    assert len(batches) == 3
    seen = []
    for batch, active in batches.batches(epoch=1):
        assert batch.positions.shape[0] == 2  # D stacked sub-batches, one shape
        real = batch.graph_mask & active[:, None]
        seen.append(int(real.sum()))
    # 11 structures: 4 + 4 + 3 (the last sub-batches split 2 + 1).
    assert seen == [4, 4, 3]
    a, _ = batches.batch(1, 2)
    b, _ = batches.batch(1, 2)
    np.testing.assert_array_equal(a.positions, b.positions)  # resumable: a pure function
    c, _ = batches.batch(2, 2)
    assert not np.array_equal(batches.dataset.order(1), batches.dataset.order(2))
    assert c.positions.shape[0] == 2
