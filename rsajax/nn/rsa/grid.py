"""The grid of the particle-mesh RSA evaluation: its choice, its description, its frequencies.

The traced kernel is :mod:`rsajax.nn.rsa.mesh`. Here, on the host (numpy, outside ``jit``): the
FFT-friendly grid shape that resolves every ``|k| <= k_cut (1 + margin)`` of a set of cells with a
chosen oversampling (:func:`mesh_shape`, :func:`batched_mesh_shape`, :func:`mesh_spec`), the
:class:`MeshSpec` that carries it as compile-time constants, and :func:`build_mesh_kset`, the
``graph.kset`` of a batch evaluated on that grid. Like the integer k-set of the direct kernel, the
grid is chosen once with a margin and re-chosen only when a cell leaves it
(:meth:`MeshSpec.covers`), as a neighbour list is reallocated. Traced: :func:`mesh_kset`, the
grid's frequencies as a :class:`~rsajax.nn.rsa.kset.KSet`, so the direct kernel's geometry and
weights (:mod:`rsajax.nn.rsa.weights`) apply to them unchanged.
"""

from __future__ import annotations

import flax.struct
import jax.numpy as jnp
import numpy as np

from rsajax.lattice import integer_bounds
from rsajax.nn.rsa.kset import KSet, real_graphs


@flax.struct.dataclass
class MeshSpec:
    """Static description of the mesh of a batch: every field is a compile-time constant.

    Attributes:
        shape: (K1, K2, K3) grid points along the three lattice vectors.
        order: B-spline order ``p`` (``p^3`` grid points per atom; 4 to 10 are sensible).
        k_cut: the weights' cutoff in 1/A (the envelope is 0 beyond it).
        envelope_width: relative width of the envelope (as in :class:`~rsajax.nn.rsa.kset.KSet`).
        oversampling: the ``K_a / (2 n_max_a + 1)`` the grid was sized with; :meth:`covers` with
            it tells whether a strained cell keeps the grid's accuracy.
    """

    shape: tuple[int, int, int] = flax.struct.field(pytree_node=False)
    order: int = flax.struct.field(pytree_node=False, default=8)
    k_cut: float = flax.struct.field(pytree_node=False, default=0.8)
    envelope_width: float = flax.struct.field(pytree_node=False, default=0.2)
    oversampling: float = flax.struct.field(pytree_node=False, default=2.0)

    def covers(self, cell: np.ndarray, oversampling: float = 1.0) -> bool:
        """Whether this grid still resolves every ``|k| <= k_cut`` of ``cell`` (NPT check).

        With ``oversampling = 1`` it answers "represented at all" (``K_a > 2 n_max``); pass the
        oversampling the grid was built with to check that its accuracy is kept.
        """
        need = _max_frequency(np.asarray(cell, float), self.k_cut, 0.0)
        return all(
            k >= max(2 * n + 1, oversampling * (2 * n + 1))
            for k, n in zip(self.shape, need, strict=True)
        )


def fft_size(minimum: int) -> int:
    """The smallest integer >= ``minimum`` whose only prime factors are 2, 3 and 5."""
    size = max(1, int(minimum))
    while True:
        rest = size
        for prime in (2, 3, 5):
            while rest % prime == 0:
                rest //= prime
        if rest == 1:
            return size
        size += 1


def _max_frequency(cell: np.ndarray, k_cut: float, margin: float) -> np.ndarray:
    """Largest ``|n_a|`` with ``|k_n| <= k_cut (1 + margin)``: ``|n_a| <= |k| |a_a| / 2 pi``."""
    if cell.shape != (3, 3) or abs(np.linalg.det(cell)) < 1e-9:
        raise ValueError(f"the mesh needs a non-singular (3, 3) cell, got\n{cell}")
    return integer_bounds(cell, k_cut * (1.0 + margin))


def mesh_shape(
    cell: np.ndarray,
    k_cut: float,
    oversampling: float = 2.0,
    margin: float = 0.1,
    name: str = "structure",
) -> tuple[int, int, int]:
    """FFT-friendly grid ``(K1, K2, K3)`` for one cell.

    ``n_max_a`` bounds ``|n_a|`` over ``|k_n| <= k_cut (1 + margin)`` (the margin lets the cell
    strain by ~``margin`` before the grid must grow; see :meth:`MeshSpec.covers`); then
    ``K_a = fft_size(ceil(oversampling (2 n_max_a + 1)))``. The aliasing error of the order-``p``
    spline at the largest needed frequency is about ``(1 / (2 oversampling - 1))^p``.
    """
    if not k_cut > 0:
        raise ValueError(f"{name}: k_cut must be positive, got {k_cut}")
    if not oversampling >= 1.0:
        raise ValueError(f"{name}: oversampling must be >= 1, got {oversampling}")
    try:
        n_max = _max_frequency(np.asarray(cell, dtype=np.float64), k_cut, margin)
    except ValueError as error:
        raise ValueError(f"{name}: {error}") from None
    if not np.any(n_max > 0):
        raise ValueError(
            f"{name}: k_cut={k_cut:g} 1/A selects no reciprocal lattice vector of this cell (the "
            "cell is too small for this k_cut); the attention would be exactly zero"
        )
    return tuple(fft_size(int(np.ceil(oversampling * (2 * n + 1)))) for n in n_max)


def batched_mesh_shape(
    cells: np.ndarray,
    pbcs: np.ndarray,
    k_cut: float,
    oversampling: float = 2.0,
    margin: float = 0.1,
    active: np.ndarray | None = None,
) -> tuple[int, int, int]:
    """One static grid for a batch or a dataset: the elementwise maximum of :func:`mesh_shape`.

    Args:
        cells: (S, 3, 3); pbcs: (S, 3) bool; active: (S,) bool (default all), e.g. a graph mask.
    Raises:
        ValueError naming the structure if an active one is not fully periodic.
    """
    cells, pbcs = np.asarray(cells, np.float64), np.asarray(pbcs, bool)
    active = np.ones(len(cells), bool) if active is None else np.asarray(active, bool)
    shapes = []
    for index in np.flatnonzero(active):
        if not pbcs[index].all():
            raise ValueError(
                f"structure {index}: the mesh evaluation needs a fully periodic cell, got "
                f"pbc={pbcs[index].tolist()}; use the direct kernel (evaluation 'direct')"
            )
        shapes.append(mesh_shape(cells[index], k_cut, oversampling, margin, f"structure {index}"))
    if not shapes:
        raise ValueError("no active structure to size the mesh for")
    return tuple(int(k) for k in np.max(np.array(shapes), axis=0))


def mesh_spec(
    cells: np.ndarray,
    pbcs: np.ndarray,
    k_cut: float,
    *,
    order: int = 6,
    oversampling: float = 2.0,
    margin: float = 0.1,
    envelope_width: float = 0.2,
    active: np.ndarray | None = None,
) -> MeshSpec:
    """The static :class:`MeshSpec` for a dataset or batch (host side, like ``max_num_k``).

    Accuracy against the direct kernel (max relative deviation of ``u``, measured in
    ``tests/nn/rsa/test_mesh.py``): order 4 / 6 / 8 at oversampling 2: ~6e-4 / 2e-5 / 1e-6;
    order 8 at oversampling 3: ~4e-8. Cost per atom grows like ``order^3``.
    """
    shape = batched_mesh_shape(cells, pbcs, k_cut, oversampling, margin, active)
    return MeshSpec(shape, int(order), float(k_cut), float(envelope_width), float(oversampling))


def build_mesh_kset(graph, mesh: MeshSpec) -> KSet:
    """The ``graph.kset`` of a batch whose attention runs on ``mesh`` (host side).

    Only ``periodic`` (real graphs) and the static ``mesh`` are read by the model; ``n``,
    ``nodes`` and ``mask`` are one masked placeholder slot. Every real graph must be fully
    periodic and its cell resolved by the grid at the grid's oversampling.

    Raises:
        ValueError naming the graph: open or slab boundaries (the mesh is a lattice sum; use
        ``evaluation='direct'``, which integrates over continuous k for open systems), or a cell
        the grid does not cover (size the spec with this structure, e.g. via ``make_kset_fn``).
    """
    cells, pbc = np.asarray(graph.cell, np.float64), np.asarray(graph.pbc, bool)
    real = real_graphs(graph)
    for g in np.flatnonzero(real):
        if not pbc[g].all():
            raise ValueError(
                f"graph {g}: the mesh evaluation needs a fully periodic cell, got "
                f"pbc={pbc[g].tolist()}; use evaluation='direct' for open-boundary or slab "
                "systems (quadrature over continuous k / lattice with vacuum)"
            )
        if not mesh.covers(cells[g], mesh.oversampling):
            raise ValueError(
                f"graph {g}: the RSA mesh {mesh.shape} does not resolve every |k| <= "
                f"{mesh.k_cut} 1/A of its cell at oversampling {mesh.oversampling}; size the "
                "mesh with this structure (make_kset_fn(config, structures))"
            )
    dtype = np.asarray(graph.cell).dtype
    dtype = dtype if np.issubdtype(dtype, np.floating) else np.float64
    num_graphs = len(cells)
    return KSet(
        n=np.zeros((num_graphs, 1, 3), np.int32),
        nodes=np.zeros((num_graphs, 1, 3), dtype),
        node_weights=np.zeros((num_graphs, 1), dtype),
        mask=np.zeros((num_graphs, 1), bool),
        periodic=real.copy(),
        k_cut=float(mesh.k_cut),
        envelope_width=float(mesh.envelope_width),
        smooth=True,
        has_open=False,
        mesh=mesh,
    )


# --------------------------------------------------------------------------- grid frequencies


def grid_frequencies(shape: tuple[int, int, int]) -> np.ndarray:
    """Signed integer frequencies of the grid in FFT order, (K1 K2 K3, 3) int32."""
    axes = [np.fft.fftfreq(k, 1.0 / k).round().astype(np.int32) for k in shape]
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)


def mesh_kset(mesh: MeshSpec, periodic: jnp.ndarray | np.ndarray, dtype=None) -> KSet:
    """The grid frequencies as a :class:`KSet`, (G, K1 K2 K3) slots in FFT order.

    Masked: ``n = 0`` (as in the direct set), the Nyquist planes of even ``K_a`` (ambiguous sign),
    and non-periodic graphs (``periodic`` False, e.g. the padding graph). With it,
    :func:`~rsajax.nn.rsa.kset.kspace_geometry` and the weights of :mod:`rsajax.nn.rsa.weights`
    give the mesh weights unchanged. ``periodic`` (G,) may be traced (e.g.
    ``graph.graph_mask & graph.pbc.all(-1)`` inside a jitted model). ``dtype``: of the (unused)
    float placeholders, so a float32 model stays float32 under x64.
    """
    n = grid_frequencies(mesh.shape)
    nyquist = np.any((2 * np.abs(n) == np.array(mesh.shape)), axis=1)
    keep = np.any(n != 0, axis=1) & ~nyquist
    periodic = jnp.asarray(periodic, bool)
    mask = keep[None, :] & periodic[:, None]
    return KSet(
        n=jnp.where(mask[..., None], n[None], 0).astype(jnp.int32),
        nodes=jnp.zeros(mask.shape + (3,), dtype),
        node_weights=jnp.zeros(mask.shape, dtype),
        mask=mask,
        periodic=periodic,
        k_cut=float(mesh.k_cut),
        envelope_width=float(mesh.envelope_width),
    )
