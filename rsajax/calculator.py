"""ASE calculator for rsajax models: energy, free_energy, forces, stress (eV, eV/A, eV/A^3) and
the long-range (RSA) part of the energy."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from rsajax.nn.model import MACEConfig, check_species, load_model
from rsajax.potential import energy_fn_from_model, make_potential


class RsajaxCalculator(Calculator):
    """Evaluate an rsajax MACE model directory (``rsajax convert`` or ``save_model`` output).

    Short-range and long-range (RSA-MACE) models, periodic cells and open boundaries (pbc all
    False; slabs use the cell with its vacuum). Results:

    - ``energy`` / ``free_energy`` (eV), ``forces`` (eV/A), ``stress`` (eV/A^3, ASE sign, Voigt;
      fully periodic 3D cells only),
    - ``long_range_energy`` (eV): the part of ``energy`` the RSA branch contributes
      (``MACE.energy_parts``): for the default ``energy`` combination an exactly additive term;
      for the feature combinations (``tp``, ``gate``, ``residual``) the energy minus that of the
      same model with the RSA outputs zeroed (one more forward pass per call). 0.0 for a
      short-range model. Also :meth:`get_long_range_energy`.

    For a long-range model the k-set is built on the host for every call
    (:func:`rsajax.nn.rsa.make_kset_fn`). Its number of slots only grows (the previous
    count is the floor), so an MD run recompiles only when a cell needs more k-vectors than any
    before; the k-set function is rebuilt when the cell or pbc change or an open structure grows
    beyond what its radial nodes resolve.

    Args:
        model_dir: directory with ``config.json`` and ``params.msgpack``.
        dtype: "float64" or "float32"; None keeps the model's.
        caps_growth: node/edge caps are rounded up by this factor so small changes in the
            neighbour count during MD do not recompile every step.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress", "long_range_energy"]

    def __init__(
        self, model_dir: str | Path, dtype: str | None = None, caps_growth: float = 1.2, **kwargs
    ):
        super().__init__(**kwargs)
        model, variables = load_model(model_dir)
        if dtype is not None:
            config = MACEConfig.from_dict({**model.config.to_dict(), "dtype": dtype})
            model = type(model)(config)
            variables = jax.tree_util.tree_map(
                lambda x: (
                    np.asarray(x, dtype) if np.issubdtype(np.asarray(x).dtype, np.floating) else x
                ),
                variables,
            )
        self.model, self.variables = model, variables
        self.config: MACEConfig = model.config
        self.caps_growth = caps_growth
        self._potential = make_potential(energy_fn_from_model(model, long_range_part=True))
        self._caps = None
        self._kset_fn = None
        self._kset_key = None

    def _kset(self, atoms):
        """The k-set function for ``atoms`` (None for a short-range model), reused while the cell,
        the pbc and (open boundaries) the radial rule still fit."""
        rsa = self.config.long_range
        if rsa is None:
            return None
        from rsajax.nn.rsa.kset import radial_nodes_for, structure_diameter
        from rsajax.nn.rsa.kset_fn import make_kset_fn

        pbc = tuple(bool(p) for p in atoms.pbc)
        # an open structure's k-set ignores the cell; a periodic one is chosen from it
        cell = np.asarray(atoms.cell.array, np.float64) if any(pbc) else None
        key = (pbc, None if cell is None else cell.tobytes())
        fn = self._kset_fn
        stale = fn is None or key != self._kset_key
        num_radial = getattr(fn, "num_radial", None)
        if not stale and not any(pbc) and num_radial is not None and rsa.num_radial is None:
            need = radial_nodes_for(rsa.k_cut, structure_diameter(atoms.positions))
            stale = need > num_radial
        if stale:
            floor = getattr(fn, "m_max", None)
            fn = make_kset_fn(rsa, [atoms], m_max=floor)
            self._kset_fn, self._kset_key = fn, key
        return fn

    def _graph(self, atoms):
        from rsajax.data import Caps, atoms_to_graph

        graph = atoms_to_graph(atoms, self.config.r_max)
        n_node, n_edge = int(graph.n_node.sum()), int(graph.n_edge[:-1].sum())
        if self._caps is None or not self._caps.fits(n_node, n_edge, 1):
            g = self.caps_growth
            self._caps = Caps(n_node=int(n_node * g) + 2, n_edge=int(n_edge * g) + 2, n_graph=2)
        return atoms_to_graph(
            atoms,
            self.config.r_max,
            caps=self._caps,
            dtype=np.dtype(self.config.dtype),
            kset_fn=self._kset(atoms),
        )

    def check_state(self, atoms, tol: float = 1e-15) -> list[str]:
        """ASE's checks plus the structure's net charge (``atoms.info["charge"]``), which
        long-range models read: a new charge is a new system, never a cached result."""
        changes = super().check_state(atoms, tol)
        if self.atoms is not None and "charge" not in changes:
            if self.atoms.info.get("charge", 0.0) != atoms.info.get("charge", 0.0):
                changes.append("charge")
        return changes

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        check_species(self.config, self.atoms.numbers)
        graph = self._graph(self.atoms)
        out = self._potential(self.variables, graph)
        n = len(self.atoms)
        energy = float(out["energy"][0])
        self.results["energy"] = energy
        self.results["free_energy"] = energy
        self.results["long_range_energy"] = float(out["long_range_energy"][0])
        self.results["forces"] = np.asarray(out["forces"][:n], dtype=np.float64)
        if np.all(self.atoms.pbc) and self.atoms.cell.rank == 3:
            stress = np.asarray(out["stress"][0], dtype=np.float64)
            self.results["stress"] = stress.flat[[0, 4, 8, 5, 2, 1]]
        elif "stress" in properties:
            from ase.calculators.calculator import PropertyNotImplementedError

            raise PropertyNotImplementedError("stress needs a periodic 3D cell")

    def get_long_range_energy(self, atoms=None) -> float:
        """The long-range (RSA) part of the potential energy (eV); 0.0 for short-range models."""
        return self.get_property("long_range_energy", atoms)
