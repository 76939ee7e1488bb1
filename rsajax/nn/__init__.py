"""Pure model code (no I/O): radial basis, MACE blocks, assembled models."""

from rsajax.nn.model import (
    MACE,
    DatasetInfo,
    MACEArchitecture,
    MACEConfig,
    init_model,
    load_model,
    save_model,
)

__all__ = [
    "MACE",
    "DatasetInfo",
    "MACEArchitecture",
    "MACEConfig",
    "init_model",
    "load_model",
    "save_model",
]
