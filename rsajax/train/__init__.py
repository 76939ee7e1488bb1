"""Training: config, loss, optax optimiser, sharded steps, orbax checkpoints and the loop.

Notebook use::

    from rsajax.train import train
    result = train("experiments/configs/train_small.yaml", {"epochs": 5})
    result.history[-1]["forces_rmse"], result.model_dir
"""

from rsajax.train.checkpoint import CheckpointMismatchError, Checkpoints, export_model
from rsajax.train.config import ConfigError, TrainConfig, load_config
from rsajax.train.loop import TrainResult, train

__all__ = [
    "CheckpointMismatchError",
    "Checkpoints",
    "ConfigError",
    "TrainConfig",
    "TrainResult",
    "export_model",
    "load_config",
    "train",
]
