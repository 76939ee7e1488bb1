"""rsajax: reciprocal-space attention and MACE interatomic potentials in JAX."""

from rsajax.graph import Graph

__version__ = "0.1.0"
__all__ = ["Graph", "__version__"]
