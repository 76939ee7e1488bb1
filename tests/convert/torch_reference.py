"""Build random mace-torch models and evaluate them on ASE structures (parity fixtures)."""

from __future__ import annotations

import contextlib

import numpy as np

from rsajax.convert.mace_torch import import_torch
from rsajax.data import neighbor_list


def make_torch_model(
    max_ell=2,
    hidden="4x0e+4x1o",
    correlation=2,
    num_interactions=2,
    first="RealAgnosticResidualInteractionBlock",
    scale_shift=True,
    seed=0,
    r_max=4.0,
    atomic_numbers=(8, 14),
    dtype="float64",
    random_weights=True,
):
    """A small mace-torch model built in ``dtype``: its buffers (Bessel frequencies,
    Clebsch-Gordan tables) are computed in that precision, as in a model trained in it.

    random_weights: N(0, 1) everywhere, also where mace initialises to zero, so no path goes
    untested; otherwise mace-torch's own initialisation (realistic magnitudes).
    """
    torch = import_torch()
    from e3nn import o3
    from mace import modules

    torch.manual_seed(seed)
    cfg = dict(
        r_max=r_max,
        num_bessel=5,
        num_polynomial_cutoff=5,
        max_ell=max_ell,
        interaction_cls=modules.interaction_classes["RealAgnosticResidualInteractionBlock"],
        interaction_cls_first=modules.interaction_classes[first],
        num_interactions=num_interactions,
        num_elements=len(atomic_numbers),
        hidden_irreps=o3.Irreps(hidden),
        MLP_irreps=o3.Irreps("3x0e"),
        gate=torch.nn.functional.silu,
        atomic_energies=np.linspace(-1.0, -2.5, len(atomic_numbers)),
        avg_num_neighbors=3.0,
        atomic_numbers=list(atomic_numbers),
        correlation=correlation,
        radial_MLP=[6, 6],
    )
    with default_dtype(torch, getattr(torch, dtype)):
        if scale_shift:
            model = modules.ScaleShiftMACE(atomic_inter_scale=1.3, atomic_inter_shift=0.2, **cfg)
        else:
            model = modules.MACE(**cfg)
    if random_weights:
        with torch.no_grad():
            for p in model.parameters():
                if p.numel() and p.requires_grad:
                    p.normal_(0.0, 1.0)
    return model.to(getattr(torch, dtype))


@contextlib.contextmanager
def default_dtype(torch, dtype):
    """torch's default dtype set to ``dtype`` inside the block (restored afterwards)."""
    previous = torch.get_default_dtype()
    torch.set_default_dtype(dtype)
    try:
        yield
    finally:
        torch.set_default_dtype(previous)


def torch_outputs(model, atoms, r_max: float) -> dict[str, np.ndarray]:
    """Energy, forces and stress (ASE sign, eV/A^3) of one structure from mace-torch, computed
    in the model's dtype and returned as float64 numpy."""
    torch = import_torch()
    dtype = next(model.parameters()).dtype
    senders, receivers, offsets = neighbor_list(atoms, r_max)
    table = [int(z) for z in model.atomic_numbers]
    index = np.array([table.index(z) for z in atoms.numbers])
    cell = np.asarray(atoms.cell.array, dtype=np.float64)
    offsets = np.asarray(offsets, dtype=np.float64)
    data = {
        "positions": torch.tensor(atoms.positions, dtype=dtype),
        "edge_index": torch.tensor(np.stack([senders, receivers]), dtype=torch.int64),
        "shifts": torch.tensor(offsets @ cell, dtype=dtype),
        "unit_shifts": torch.tensor(offsets, dtype=dtype),
        "cell": torch.tensor(cell, dtype=dtype),
        "node_attrs": torch.nn.functional.one_hot(torch.tensor(index), len(table)).to(dtype),
        "batch": torch.zeros(len(atoms), dtype=torch.int64),
        "ptr": torch.tensor([0, len(atoms)], dtype=torch.int64),
        "head": torch.zeros(1, dtype=torch.int64),
    }
    periodic = bool(np.all(atoms.pbc)) and abs(np.linalg.det(cell)) > 0
    with default_dtype(torch, dtype):  # tensors mace-torch creates inside forward
        out = model(data, compute_force=True, compute_stress=periodic)
    stress = out["stress"][0].detach().double().numpy() if periodic else np.zeros((3, 3))
    return {
        "energy": float(out["energy"][0]),
        "forces": out["forces"].detach().double().numpy(),
        "stress": stress,
    }
