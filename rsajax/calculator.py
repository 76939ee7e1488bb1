"""ASE calculator for rsajax models: energy, free_energy, forces, stress (eV, eV/A, eV/A^3)."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
from ase.calculators.calculator import Calculator, all_changes

from rsajax.nn.model import MACEConfig, check_species, load_model
from rsajax.potential import energy_fn_from_model, make_potential


class RsajaxCalculator(Calculator):
    """Evaluate an rsajax MACE model directory (``rsajax convert`` or ``save_model`` output).

    Args:
        model_dir: directory with ``config.json`` and ``params.msgpack``.
        dtype: "float64" or "float32"; None keeps the model's.
        caps_growth: node/edge caps are rounded up by this factor so small changes in the
            neighbour count during MD do not recompile every step.
    """

    implemented_properties = ["energy", "free_energy", "forces", "stress"]

    def __init__(
        self, model_dir: str | Path, dtype: str | None = None, caps_growth: float = 1.2, **kwargs
    ):
        super().__init__(**kwargs)
        model, variables = load_model(model_dir)
        if dtype is not None:
            config = MACEConfig.from_dict({**model.config.to_dict(), "dtype": dtype})
            model = type(model)(config)
            variables = jax.tree_util.tree_map(lambda x: np.asarray(x, dtype), variables)
        self.model, self.variables = model, variables
        self.config: MACEConfig = model.config
        self.caps_growth = caps_growth
        self._potential = make_potential(energy_fn_from_model(model))
        self._caps = None

    def _graph(self, atoms):
        from rsajax.data import Caps, atoms_to_graph

        graph = atoms_to_graph(atoms, self.config.r_max)
        n_node, n_edge = int(graph.n_node.sum()), int(graph.n_edge[:-1].sum())
        if self._caps is None or not self._caps.fits(n_node, n_edge, 1):
            g = self.caps_growth
            self._caps = Caps(n_node=int(n_node * g) + 2, n_edge=int(n_edge * g) + 2, n_graph=2)
        return atoms_to_graph(
            atoms, self.config.r_max, caps=self._caps, dtype=np.dtype(self.config.dtype)
        )

    def calculate(self, atoms=None, properties=("energy",), system_changes=all_changes):
        super().calculate(atoms, properties, system_changes)
        check_species(self.config, self.atoms.numbers)
        graph = self._graph(self.atoms)
        out = self._potential(self.variables, graph)
        n = len(self.atoms)
        energy = float(out["energy"][0])
        self.results["energy"] = energy
        self.results["free_energy"] = energy
        self.results["forces"] = np.asarray(out["forces"][:n], dtype=np.float64)
        if np.all(self.atoms.pbc) and self.atoms.cell.rank == 3:
            stress = np.asarray(out["stress"][0], dtype=np.float64)
            self.results["stress"] = stress.flat[[0, 4, 8, 5, 2, 1]]
        elif "stress" in properties:
            from ase.calculators.calculator import PropertyNotImplementedError

            raise PropertyNotImplementedError("stress needs a periodic 3D cell")
