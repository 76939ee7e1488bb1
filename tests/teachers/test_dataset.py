"""The shipped silica data set: readable, labelled by BKS, reproducible, a tetrahedral glass."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
from ase.io import read
from ase.neighborlist import neighbor_list

import rsajax
from rsajax.teachers import bks_energy_forces_stress
from rsajax.teachers.generate import CONFIGS, generate

DEFAULT_DATASET = Path(rsajax.__file__).parent / "data" / "default" / "silica_small.xyz"


@pytest.fixture(scope="module")
def frames():
    return read(DEFAULT_DATASET, ":")


def test_file_is_small_and_described(frames):
    assert DEFAULT_DATASET.stat().st_size < 5e6
    summary = json.loads(DEFAULT_DATASET.with_suffix(".json").read_text())
    assert summary["frames"] == len(frames)
    assert summary["config"]["name"] == "small"
    assert set(summary["stages"]) == {"crystal", "melt", "quench", "anneal", "strained"}
    assert sum(summary["stages"].values()) == len(frames)


def test_rsajax_reader_accepts_every_frame_with_all_labels(frames):
    from rsajax.data import read_structures

    structures = read_structures(DEFAULT_DATASET, require=("energy", "forces", "stress"))
    assert len(structures) == len(frames)
    assert {len(a) for a in structures} <= set(range(48, 193))
    for atoms in structures[:3]:
        assert atoms.get_stress(voigt=False).shape == (3, 3)
        for key in ("stage", "temperature_K", "seed", "strain", "source"):
            assert key in atoms.info


@pytest.mark.parametrize("stage", ["crystal", "quench", "strained"])
def test_labels_are_the_bks_labels_of_the_written_positions(frames, stage):
    atoms = next(a for a in frames if a.info["stage"] == stage)
    energy, forces, stress = bks_energy_forces_stress(atoms)
    assert energy == pytest.approx(atoms.get_potential_energy(), rel=1e-10)
    assert np.abs(forces - atoms.get_forces()).max() < 1e-6  # written with 6 decimals
    assert np.allclose(stress, atoms.get_stress(voigt=False), rtol=1e-9, atol=1e-12)


def test_generator_reproduces_the_first_crystal_frames(frames):
    config = CONFIGS["small"]
    count = config.crystal_frames + 2  # all of the first crystal and two of the second
    for made, shipped in zip(
        itertools.islice(generate(config, seed=0), count), frames, strict=False
    ):
        assert made.info["source"] == shipped.info["source"]
        assert np.allclose(made.cell.array, shipped.cell.array, atol=1e-12)
        assert np.abs(made.positions - shipped.positions).max() < 2e-6
        assert made.get_potential_energy() == pytest.approx(shipped.get_potential_energy(), 1e-9)


@pytest.mark.slow
def test_generator_reproduces_the_first_melt_frame(frames):
    config = CONFIGS["small"]
    n_crystal = config.crystal_frames * len(config.crystal_repeats)
    made = next(itertools.islice(generate(config, seed=0), n_crystal, None))
    shipped = frames[n_crystal]
    assert made.info["stage"] == shipped.info["stage"] == "melt"
    # 2 ps of float32 MD: equal on this machine; across CPUs chaos may amplify rounding
    assert np.abs(made.positions - shipped.positions).max() < 1e-3


def test_quenched_glass_is_a_tetrahedral_network(frames):
    glass = [a for a in frames if a.info["stage"] == "anneal"]
    assert len(glass) >= 10
    si_coordination, distances = [], []
    for atoms in glass:
        i, j, d = neighbor_list("ijd", atoms, 2.2)  # first minimum of g_SiO (~2.2 A)
        si_o = (atoms.numbers[i] == 14) & (atoms.numbers[j] == 8)
        si_coordination.append(np.sum(si_o) / np.sum(atoms.numbers == 14))
        distances.append(d[si_o])
    histogram, edges = np.histogram(np.concatenate(distances), bins=np.arange(1.3, 2.2, 0.02))
    peak = 0.5 * (edges[np.argmax(histogram)] + edges[np.argmax(histogram) + 1])
    assert np.mean(si_coordination) == pytest.approx(4.0, abs=0.15)
    assert peak == pytest.approx(1.6, abs=0.05)


def test_dense_random_start_is_compressed_from_the_placement_density():
    from rsajax.data.neighbors import neighbor_list as pairs
    from rsajax.teachers import structures

    dense = structures.random_silica_compressed(16, 2.6, np.random.default_rng([0, 1]))
    placed = structures.random_silica(16, 2.2, np.random.default_rng([0, 1]))
    mass = dense.get_masses().sum() * 1.66053907e-24
    assert mass / (dense.get_volume() * 1e-24) == pytest.approx(2.6)
    np.testing.assert_allclose(dense.get_scaled_positions(), placed.get_scaled_positions())
    i, j, shifts = pairs(dense, 1.0)  # compressed by 5.4%: still no pair within 1 A
    assert len(i) == 0
    light = structures.random_silica_compressed(16, 2.0, np.random.default_rng(3))
    np.testing.assert_allclose(
        light.positions, structures.random_silica(16, 2.0, np.random.default_rng(3)).positions
    )
