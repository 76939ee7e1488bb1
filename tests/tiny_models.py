"""Tiny MACE configurations shared by the tests: two elements (O, Si), a few channels."""

from __future__ import annotations

from rsajax.nn.model import MACEConfig

TINY = dict(
    r_max=3.5,
    num_bessel=4,
    max_ell=2,
    num_channels=3,
    max_L=1,
    correlation=3,
    num_interactions=2,
    MLP_irreps="2x0e",
    radial_MLP=(4,),
    avg_num_neighbors=5.0,
    atomic_numbers=(8, 14),
    atomic_energies=(-2.0, -4.0),
)


def tiny_config(**overrides) -> MACEConfig:
    """A two-layer MACE small enough for float64 finite differences; ``overrides`` win."""
    return MACEConfig(**{**TINY, **overrides})


def switch_on_long_range(variables: dict, scale: float = 0.05, seed: int = 0) -> dict:
    """``variables`` with random RSA energy readouts (``combine="energy"`` starts them at zero,
    so a fresh RSA-MACE has no long-range energy) and random net-charge amplitudes (also zero at
    first); every other array is kept."""
    import numpy as np

    rng = np.random.default_rng(seed)
    params = dict(variables["params"])
    for name, layer in params.items():
        if name.startswith("long_range_") and "energy_readout" in layer:
            kernel = np.asarray(layer["energy_readout"]["kernel"])
            readout = {"kernel": rng.normal(0.0, scale, kernel.shape).astype(kernel.dtype)}
            params[name] = {**layer, "energy_readout": readout}
            if "charge_amplitude" in layer.get("rsa", {}):  # the amplitude of a unit net charge
                unit = np.asarray(layer["rsa"]["charge_amplitude"])
                unit = rng.normal(0.0, 0.5, unit.shape).astype(unit.dtype)
                params[name]["rsa"] = {**layer["rsa"], "charge_amplitude": unit}
    return {**variables, "params": params}
