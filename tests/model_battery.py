"""A reusable invariance and gradient battery for any rsajax energy model.

Subclass :class:`ModelBattery` in a test module and implement ``make_model`` (see
``tests/nn/test_mace_battery.py``); every test below then runs on that model. All graphs share one
set of caps so the jitted potential compiles once (padding invariance uses a second set).

Checked: rotation (joint with the cell), translation, permutation, periodic wrapping, supercell
extensivity, padding invariance, jit vs eager, forces and stress against finite differences,
finite parameter gradients with padding, zero stress without a cell.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import numpy as np
import pytest
from ase import Atoms

from rsajax.data import Caps, atoms_to_graph
from rsajax.potential import make_potential
from tests.structures import molecule, rattled_crystal, symmetrically_strained, triclinic

CAPS = Caps(n_node=48, n_edge=2400, n_graph=3)
BIG_CAPS = Caps(n_node=61, n_edge=3001, n_graph=5)


@dataclasses.dataclass
class ModelUnderTest:
    """``energy_fn(variables, graph) -> (G,)`` with its variables and neighbour cutoff."""

    energy_fn: Callable[[Any, Any], jax.Array]
    variables: Any
    cutoff: float


def random_rotation(seed: int) -> np.ndarray:
    q, r = np.linalg.qr(np.random.default_rng(seed).normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


class ModelBattery:
    """Mixin: subclasses implement :meth:`make_model` (cache it; it is called per test)."""

    rtol = 1e-9  # float64 invariances hold to round-off
    fd_rtol = 1e-5  # finite differences

    def make_model(self) -> ModelUnderTest:
        raise NotImplementedError

    # -- helpers -----------------------------------------------------------------------------

    @pytest.fixture
    def model(self) -> ModelUnderTest:
        return self.make_model()

    @pytest.fixture
    def potential(self, model):
        return make_potential(model.energy_fn)

    def evaluate(self, model, potential, structures: list[Atoms], caps: Caps = CAPS) -> list[dict]:
        graph = atoms_to_graph(structures, model.cutoff, caps=caps)
        out = jax.tree_util.tree_map(np.asarray, potential(model.variables, graph))
        node_graph = np.asarray(graph.node_graph)
        node_mask = np.asarray(graph.node_mask)
        return [
            {
                "energy": out["energy"][i],
                "stress": out["stress"][i],
                "virial": out["virial"][i],
                "forces": out["forces"][(node_graph == i) & node_mask],
            }
            for i in range(len(structures))
        ]

    def assert_close(self, a, b, what: str, rtol: float | None = None) -> None:
        a, b = np.asarray(a), np.asarray(b)
        scale = max(float(np.max(np.abs(b), initial=0.0)), 1e-8)
        err = float(np.max(np.abs(a - b), initial=0.0))
        assert err <= (rtol or self.rtol) * scale, f"{what}: {err:.3e} (scale {scale:.3e})"

    # -- symmetry ----------------------------------------------------------------------------

    def test_rotation_with_cell(self, model, potential):
        base = [triclinic(), molecule()]
        rot = random_rotation(5)
        turned = []
        for atoms in base:
            a = atoms.copy()
            a.positions = atoms.positions @ rot.T
            if atoms.pbc.any():
                a.cell = atoms.cell.array @ rot.T
            turned.append(a)
        for ref, out in zip(
            self.evaluate(model, potential, base),
            self.evaluate(model, potential, turned),
            strict=True,
        ):
            self.assert_close(out["energy"], ref["energy"], "energy")
            self.assert_close(out["forces"], ref["forces"] @ rot.T, "forces")
            self.assert_close(out["stress"], rot @ ref["stress"] @ rot.T, "stress")

    def test_translation(self, model, potential):
        base = [triclinic(), molecule()]
        moved = [a.copy() for a in base]
        for a in moved:
            a.positions += np.array([0.31, -1.7, 2.2])
        for ref, out in zip(
            self.evaluate(model, potential, base),
            self.evaluate(model, potential, moved),
            strict=True,
        ):
            self.assert_close(out["energy"], ref["energy"], "energy")
            self.assert_close(out["forces"], ref["forces"], "forces")

    def test_permutation(self, model, potential):
        atoms = rattled_crystal()
        perm = np.random.default_rng(0).permutation(len(atoms))
        ref, out = self.evaluate(model, potential, [atoms, atoms[perm]])
        self.assert_close(out["energy"], ref["energy"], "energy")
        self.assert_close(out["forces"], ref["forces"][perm], "forces")
        self.assert_close(out["stress"], ref["stress"], "stress")

    def test_periodic_wrapping(self, model, potential):
        atoms = triclinic()
        shifted = atoms.copy()
        shifted.positions[0] += 2 * atoms.cell[0] - atoms.cell[2]
        shifted.positions[1] -= atoms.cell[1]
        ref, out = self.evaluate(model, potential, [atoms, shifted])
        self.assert_close(out["energy"], ref["energy"], "energy")
        self.assert_close(out["forces"], ref["forces"], "forces")
        self.assert_close(out["stress"], ref["stress"], "stress")

    def test_supercell_extensivity(self, model, potential):
        atoms = rattled_crystal()
        ref, out = self.evaluate(model, potential, [atoms, atoms * (2, 1, 1)])
        self.assert_close(out["energy"], 2 * ref["energy"], "energy")
        self.assert_close(out["forces"], np.concatenate([ref["forces"]] * 2), "forces")
        self.assert_close(out["stress"], ref["stress"], "stress")

    # -- padding and compilation -------------------------------------------------------------

    def test_padding_invariance(self, model, potential):
        structures = [triclinic(), molecule()]
        tight = self.evaluate(model, potential, structures)
        loose = self.evaluate(model, potential, structures, caps=BIG_CAPS)
        for a, b in zip(tight, loose, strict=True):
            for key in ("energy", "forces", "stress"):
                self.assert_close(b[key], a[key], key)
        graph = atoms_to_graph(structures, model.cutoff, caps=BIG_CAPS)
        out = potential(model.variables, graph)
        padded = ~np.asarray(graph.node_mask)
        assert np.all(np.asarray(out["forces"])[padded] == 0.0)
        assert np.all(np.asarray(out["energy"])[~np.asarray(graph.graph_mask)] == 0.0)

    def test_jit_matches_eager(self, model):
        graph = atoms_to_graph([molecule()], model.cutoff)
        jitted = np.asarray(jax.jit(model.energy_fn)(model.variables, graph))
        with jax.disable_jit():
            eager = np.asarray(model.energy_fn(model.variables, graph))
        self.assert_close(jitted, eager, "energy", rtol=1e-12)

    def test_parameter_gradients_finite(self, model):
        graph = atoms_to_graph([triclinic(), molecule()], model.cutoff, caps=BIG_CAPS)

        def loss(variables):
            return model.energy_fn(variables, graph).sum()

        grads = jax.jit(jax.grad(loss))(model.variables)
        leaves = jax.tree_util.tree_leaves(grads)
        assert all(np.all(np.isfinite(np.asarray(g))) for g in leaves)
        assert any(np.any(np.asarray(g) != 0) for g in leaves)

    # -- derivatives -------------------------------------------------------------------------

    def test_forces_finite_differences(self, model, potential):
        atoms, h = triclinic(), 1e-4
        ref = self.evaluate(model, potential, [atoms])[0]
        for i, k in [(0, 0), (1, 2), (3, 1)]:
            plus, minus = atoms.copy(), atoms.copy()
            plus.positions[i, k] += h
            minus.positions[i, k] -= h
            e_plus, e_minus = self.evaluate(model, potential, [plus, minus])
            fd = -(e_plus["energy"] - e_minus["energy"]) / (2 * h)
            scale = max(np.max(np.abs(ref["forces"])), 1e-6)
            assert abs(fd - ref["forces"][i, k]) <= self.fd_rtol * scale, (i, k, fd, ref["forces"])

    def test_stress_finite_differences(self, model, potential):
        atoms, h = triclinic(), 1e-4
        ref = self.evaluate(model, potential, [atoms])[0]
        volume = atoms.get_volume()
        for i, j in [(0, 0), (1, 2), (2, 0)]:
            strains = [symmetrically_strained(atoms, i, j, sign * h) for sign in (1, -1)]
            e_plus, e_minus = self.evaluate(model, potential, strains)
            fd = (e_plus["energy"] - e_minus["energy"]) / (2 * h) / volume
            scale = max(np.max(np.abs(ref["stress"])), 1e-8)
            assert abs(fd - ref["stress"][i, j]) <= self.fd_rtol * scale, (i, j, fd, ref["stress"])
        self.assert_close(ref["virial"], -ref["stress"] * volume, "virial")

    def test_open_boundary_has_zero_stress(self, model, potential):
        out = self.evaluate(model, potential, [molecule()])[0]
        assert np.all(out["stress"] == 0.0)
        assert np.any(out["virial"] != 0.0)
