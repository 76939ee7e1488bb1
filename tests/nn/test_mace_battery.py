"""The invariance battery on a fresh (not converted) rsajax MACE."""

from __future__ import annotations

import functools

from rsajax.nn.model import MACEConfig, init_model
from rsajax.potential import energy_fn_from_model
from tests.model_battery import ModelBattery, ModelUnderTest


@functools.cache
def small_mace() -> ModelUnderTest:
    config = MACEConfig(
        r_max=4.0,
        num_bessel=6,
        num_polynomial_cutoff=5,
        max_ell=2,
        num_channels=4,
        max_L=1,
        correlation=3,
        num_interactions=2,
        MLP_irreps="4x0e",
        radial_MLP=(8, 8),
        avg_num_neighbors=6.0,
        atomic_numbers=(8, 14),
        atomic_energies=(-3.0, -5.0),
        scale=1.5,
        shift=0.1,
    )
    model, variables = init_model(config, seed=1)
    return ModelUnderTest(energy_fn_from_model(model), variables, config.r_max)


class TestMACEBattery(ModelBattery):
    def make_model(self) -> ModelUnderTest:
        return small_mace()
