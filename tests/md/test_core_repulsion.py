"""Core repulsion: a pair wall added to an MD system below given radii, zero beyond them."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rsajax.md.adapter import core_repulsion_energy, with_core_repulsion
from rsajax.md.cli import build_system
from rsajax.md.teacher import lennard_jones_system

RADII = {"Si-O": 1.1, "O-O": 1.6}


def _pair(r: float, numbers=(14, 8), length: float = 10.0):
    box = np.eye(3) * length
    R = jnp.asarray(np.array([[0.1, 0.2, 0.3], [0.1 + r / length, 0.2, 0.3]]))
    system = lennard_jones_system(np.array(numbers), box, sigma=1.0, epsilon=0.0)
    return system, R, system.allocate(R)


@pytest.mark.parametrize("r", [0.5, 0.9, 1.09, 1.2, 2.5])
def test_wall_energy_of_one_pair(r):
    system, R, nbrs = _pair(r)
    wall = core_repulsion_energy(system.numbers, RADII, 10.0, system.box)
    expected = 10.0 * (1.1 / r - 1.0) ** 2 if r < 1.1 else 0.0
    np.testing.assert_allclose(float(wall(R, nbrs)), expected, rtol=1e-6, atol=1e-12)


def test_wall_across_the_boundary_and_only_for_listed_pairs():
    # the pair straddles the periodic boundary: 0.8 A apart through it
    system, _, _ = _pair(1.0, numbers=(8, 8))
    R = jnp.asarray(np.array([[0.02, 0.5, 0.5], [0.96, 0.5, 0.5]]))
    nbrs = system.allocate(R)
    wall = core_repulsion_energy(system.numbers, RADII, 10.0, system.box)
    np.testing.assert_allclose(float(wall(R, nbrs)), 10.0 * (1.6 / 0.6 - 1) ** 2, rtol=1e-6)
    # Si-Si has no radius: no wall
    system, R, nbrs = _pair(0.5, numbers=(14, 14))
    assert float(core_repulsion_energy(system.numbers, RADII, 10.0, system.box)(R, nbrs)) == 0.0


def test_with_core_repulsion_adds_the_wall_and_pushes_apart():
    system, R, nbrs = _pair(0.9)
    walled = with_core_repulsion(system, RADII, 10.0)
    e0 = float(system.energy_fn(R, nbrs))
    e1 = float(walled.energy_fn(R, nbrs))
    np.testing.assert_allclose(e1 - e0, 10.0 * (1.1 / 0.9 - 1) ** 2, rtol=1e-6)
    force = -jax.grad(lambda x: walled.energy_fn(x, nbrs) - system.energy_fn(x, nbrs))(R)
    assert float(force[1, 0]) > 0 > float(force[0, 0])  # repulsive along x
    rebuilt = walled.rebuild(system.box)
    np.testing.assert_allclose(float(rebuilt.energy_fn(R, rebuilt.allocate(R))), e1, rtol=1e-6)


def test_md_config_core_repulsion():
    from ase import Atoms

    atoms = Atoms("SiO", positions=[[1, 2, 3], [1.9, 2, 3]], cell=np.eye(3) * 10, pbc=True)
    with pytest.raises(ValueError, match="BKS teacher has its own wall"):
        build_system({"model": "bks", "core_repulsion": {"radii": RADII}}, atoms, "float64")
    with pytest.raises(ValueError, match="needs radii"):
        build_system({"model": "x", "core_repulsion": {"radius": 1.0}}, atoms, "float64")


def test_md_config_runs_either_bks_teacher():
    from ase import Atoms

    atoms = Atoms("SiO", positions=[[1, 2, 3], [2.6, 2, 3]], cell=np.eye(3) * 12, pbc=True)
    # the list reaches the variant's short-range cut plus the skin (0.5 A)
    assert build_system({"model": "bks"}, atoms, "float64").list_cutoff == 10.5
    assert build_system({"model": "bks-glass"}, atoms, "float64").list_cutoff == 6.0
    with pytest.raises(ValueError, match="BKS teacher has its own wall"):
        build_system({"model": "bks-glass", "core_repulsion": {"radii": RADII}}, atoms, "float64")
