"""k-vectors for reciprocal-space attention: the :class:`KSet` and its choice on the host.

Two kinds of structure share one representation, the :class:`KSet`:

- **Periodic** (and mixed/slab) graphs carry *integer* coefficients ``n`` chosen on the host.
  The Cartesian vectors ``k = 2 pi n inv(cell)^T`` are computed from the (possibly strained) cell
  inside the differentiated function (:func:`kspace_geometry`), so phases ``k . r = 2 pi n . s``
  are exactly periodic and the stress is right. Each vector carries the lattice-sum measure ``1/V``.
- **Open-boundary** graphs (``pbc`` all False) carry radial quadrature nodes ``|k_m|`` (stored
  as ``(|k_m|, 0, 0)``) and weights of the continuous Fourier integral (:func:`open_quadrature`);
  ``sum_m w_m f(|k_m|)`` approximates ``(2 pi)^-3 int_{|k| <= k_cut} d^3k f(|k|)``, the same
  object the lattice sum ``(1/V) sum_n`` approximates, so every weighting means the same thing
  for both. The angular integral is exact (``sinc(|k| r)``), so the open-boundary attention is
  a pair sum with an isotropic radial kernel rather than a phase factorisation.

Mixed boundaries (some ``pbc`` False) use the lattice with the vacuum the cell already contains:
the attention is then periodic in every direction (slab images interact across the vacuum, no
dipole correction). The cell must be non-singular.

The host functions here (numpy) choose the k-set: lattice sets (:func:`integer_kset`, from the
shared enumeration :func:`rsajax.lattice.integer_vectors`), the open-boundary radial rule
(:func:`open_quadrature`) and the seed set (:func:`seed_kset`); :func:`build_kset` and
:func:`build_seed_kset` do it for a batch. Only :func:`kspace_geometry`, :func:`k_squared` and
:func:`half_kset` run inside ``jit``. The per-k weights are :mod:`rsajax.nn.rsa.weights`.
"""

from __future__ import annotations

from typing import Any

import flax.struct
import jax.numpy as jnp
import numpy as np

from rsajax.lattice import TWO_PI, in_half_space, integer_vectors, reciprocal_vectors

#: Reference cutoff of the seed model: |k| <= 2 pi / 10 A.
SEED_K_CUT = TWO_PI / 10.0
SEED_NUM_K = 6


@flax.struct.dataclass
class KSet:
    """The k-vectors of a batch of ``G`` graphs, padded to ``M`` per graph.

    Attributes:
        n: (G, M, 3) int32 integer coefficients (periodic graphs; 0 elsewhere).
        nodes: (G, M, 3) Cartesian quadrature nodes, 1/A (open graphs; 0 elsewhere).
        node_weights: (G, M) quadrature weights, 1/A^3 (open graphs; 0 elsewhere).
        mask: (G, M) bool, True on real k-vectors.
        periodic: (G,) bool, True where ``n`` is used, False where ``nodes`` are used.
        k_cut: the envelope reaches 0 here, 1/A (static).
        envelope_width: the envelope falls from 1 to 0 over ``[k_cut (1 - width), k_cut]``.
        smooth: False only for the seed set, whose weights carry no envelope (static).
        has_open: True if any graph uses quadrature nodes (static), checked at trace time.
        mesh: None for the direct lattice sum, or a :class:`rsajax.nn.rsa.grid.MeshSpec` (static:
            grid shape and spline order are compile-time constants) when the attention is
            evaluated on a particle mesh; ``n``/``nodes`` are then unused one-slot placeholders
            and only ``periodic`` is read (see :func:`rsajax.nn.rsa.kset_fn.make_kset_fn`).
        pair_index: None, or (G, ceil(M/2)) int32 slots of one vector of each ``(n, -n)`` pair
            (padded with masked slots). Set by :func:`build_kset` when every graph is periodic,
            so the direct kernel can sum over half the vectors (:func:`inversion_pairs`).
        node_slots: None, or (G, S) int32 indices of each graph's real nodes, -1 on empty slots
            (:func:`graph_node_slots`; ``S`` static, the dataset's largest structure). With it the
            direct kernel sums over each graph's own nodes instead of masking all ``N`` nodes of
            the batch against every graph: ``G`` times less work for a batch of ``G`` graphs.
    """

    n: np.ndarray
    nodes: np.ndarray
    node_weights: np.ndarray
    mask: np.ndarray
    periodic: np.ndarray
    k_cut: float = flax.struct.field(pytree_node=False)
    envelope_width: float = flax.struct.field(pytree_node=False, default=0.2)
    smooth: bool = flax.struct.field(pytree_node=False, default=True)
    has_open: bool = flax.struct.field(pytree_node=False, default=False)
    mesh: Any = flax.struct.field(pytree_node=False, default=None)
    pair_index: np.ndarray | None = None
    node_slots: np.ndarray | None = None

    @property
    def num_k(self) -> int:
        """M, the static number of k slots per graph."""
        return self.mask.shape[-1]


# --------------------------------------------------------------------------- traced functions


def kspace_geometry(kset: KSet, cell: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Cartesian k-vectors and their measure from a k-set and the (strained) cell.

    Args:
        kset: the batch's k-set.
        cell: (G, 3, 3) lattice vectors as rows (zero or anything for open graphs).
    Returns:
        kvectors (G, M, 3) in 1/A, 0 on masked slots; measure (G, M): ``1/V`` for lattice
        vectors, the quadrature weight for open-boundary nodes, 0 on masked slots.
    """
    periodic = kset.periodic[:, None, None]
    eye = jnp.eye(3, dtype=cell.dtype)
    # Open graphs may have a zero cell: never invert it (keeps values and gradients finite).
    safe_cell = jnp.where(periodic, cell, eye)
    lattice_k = jnp.einsum("gmi,gij->gmj", kset.n.astype(cell.dtype), reciprocal_vectors(safe_cell))
    kvectors = jnp.where(periodic, lattice_k, jnp.asarray(kset.nodes, cell.dtype))
    volume = jnp.abs(jnp.linalg.det(safe_cell))
    measure = jnp.where(
        kset.periodic[:, None], 1.0 / volume[:, None], jnp.asarray(kset.node_weights, cell.dtype)
    )
    mask = kset.mask
    return jnp.where(mask[..., None], kvectors, 0.0), jnp.where(mask, measure, 0.0)


def k_squared(kset: KSet, kvectors: jnp.ndarray) -> jnp.ndarray:
    """(G, M) ``|k|^2`` of every slot, 1 on masked slots: those sit at ``k = 0``, and 1 keeps
    ``1 / k^2`` and the derivative of ``|k|`` finite there (callers zero masked slots)."""
    return jnp.where(kset.mask, jnp.sum(kvectors * kvectors, axis=-1), 1.0)


def half_kset(kset: KSet) -> KSet:
    """The slots ``kset.pair_index`` names: one vector of each ``(n, -n)`` pair, (G, ceil(M/2))."""
    index = jnp.asarray(kset.pair_index)

    def take(x):
        x = jnp.asarray(x)
        return jnp.take_along_axis(x, index.reshape(index.shape + (1,) * (x.ndim - 2)), axis=1)

    return kset.replace(
        n=take(kset.n),
        nodes=take(kset.nodes),
        node_weights=take(kset.node_weights),
        mask=take(kset.mask),
        pair_index=None,
    )


# --------------------------------------------------------------------------- host: lattice sets


def _check_cell(cell: np.ndarray, what: str) -> np.ndarray:
    cell = np.asarray(cell, dtype=np.float64)
    if cell.shape != (3, 3):
        raise ValueError(f"{what}: cell must have shape (3, 3), got {cell.shape}")
    if abs(np.linalg.det(cell)) < 1e-9:
        raise ValueError(
            f"{what}: the cell is singular (volume {np.linalg.det(cell):.3g} A^3); a lattice "
            "k-set needs three lattice vectors (pad non-periodic directions with vacuum)"
        )
    return cell


def integer_kset(
    cell: np.ndarray,
    k_cut: float,
    margin: float = 0.1,
    m_max: int | None = None,
    name: str = "structure",
) -> tuple[np.ndarray, np.ndarray]:
    """All integer ``n != 0`` with ``|2 pi n inv(cell)^T| <= k_cut (1 + margin)``, padded.

    The set is a union of complete shells and closed under ``n -> -n``. The margin keeps every
    vector that can cross ``k_cut`` while the cell strains by up to ~``margin`` in the set, where
    the envelope (zero at ``k_cut``) brings it in continuously; see :func:`kset_covers` to decide
    when to rebuild. Order: by |k|, then lexicographic in ``n`` (deterministic).

    Args:
        cell: (3, 3) lattice vectors as rows.
        k_cut: envelope cutoff in 1/A.
        margin: relative extra radius of the selection.
        m_max: pad to this many slots (default: exactly the count).
        name: names the structure in error messages.
    Returns:
        n (M, 3) int32 (zeros on padding), mask (M,) bool.
    """
    cell = _check_cell(cell, name)
    if not k_cut > 0:
        raise ValueError(f"{name}: k_cut must be positive, got {k_cut}")
    radius = k_cut * (1.0 + margin)
    n, k_norm = integer_vectors(cell, radius)
    if len(n) == 0:
        shortest = np.min(np.linalg.norm(reciprocal_vectors(cell), axis=1))
        raise ValueError(
            f"{name}: k_cut={k_cut:g} 1/A (selection radius {radius:g}) selects no reciprocal "
            f"lattice vector; the shortest reciprocal basis vector has |k|={shortest:.4g} 1/A"
        )
    order = np.lexsort((n[:, 2], n[:, 1], n[:, 0], np.round(k_norm, 12)))
    n = n[order]
    return _pad(n, m_max, name)


def _pad(n: np.ndarray, m_max: int | None, name: str) -> tuple[np.ndarray, np.ndarray]:
    count = n.shape[0]
    m_max = count if m_max is None else m_max
    if count > m_max:
        raise ValueError(f"{name}: the k-set has {count} vectors but m_max={m_max}")
    padded = np.zeros((m_max, 3), dtype=np.int32)
    padded[:count] = n
    mask = np.zeros(m_max, dtype=bool)
    mask[:count] = True
    return padded, mask


def kset_covers(cell: np.ndarray, n: np.ndarray, mask: np.ndarray, k_cut: float) -> bool:
    """Whether a stored integer set still contains every vector with ``|k| <= k_cut``.

    Call it when the cell changes (NPT); rebuild the set (host side, like a neighbour list) when
    it returns False. While True, the energy is exactly that of a freshly chosen set, because the
    extra vectors sit beyond ``k_cut`` where the envelope is zero.
    """
    needed, _ = integer_kset(cell, k_cut, margin=0.0)
    have = {tuple(row) for row in np.asarray(n)[np.asarray(mask)]}
    return all(tuple(row) in have for row in needed)


def inversion_pairs(n: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """One slot of every ``(n, -n)`` pair per graph: (G, M, 3), (G, M) -> (G, ceil(M / 2)) int32.

    The representative has its first non-zero component positive (the half space of
    :func:`rsajax.lattice.in_half_space`, as in the Ewald teacher). Unused entries point at a masked
    slot (one exists whenever fewer than ``ceil(M/2)`` pairs are real). Raises if a graph's set is
    not closed under ``n -> -n`` (lattice sets from :func:`integer_kset` always are).
    """
    n, mask = np.asarray(n), np.asarray(mask, bool)
    half = (n.shape[1] + 1) // 2
    index = np.zeros((n.shape[0], half), np.int32)
    for g in range(n.shape[0]):
        real = np.flatnonzero(mask[g])
        vectors = n[g, real]
        present = {tuple(v) for v in vectors}
        if any(tuple(-v) not in present for v in vectors):
            raise ValueError(f"graph {g}: the k-set is not closed under n -> -n")
        reps = real[in_half_space(vectors)]
        padding = np.flatnonzero(~mask[g])
        index[g, : len(reps)] = reps
        index[g, len(reps) :] = padding[0] if len(padding) else 0
    return index


def seed_kset(cell: np.ndarray, name: str = "structure") -> tuple[np.ndarray, np.ndarray]:
    """The reference model's k-vectors: orthorhombic cells only, ``M = 6`` slots.

    The reference enumerates ``n`` over ``[-n_i, n_i]`` per axis in C order (``n_x`` slowest,
    ascending from negative), keeps ``0 < |k|^2 <= (2 pi / 10 A)^2`` with ``k = 2 pi n / L``, and
    takes the first six. We reproduce that order exactly (not the six shortest vectors) because
    seed mode exists to evaluate published weights; the resulting set is not closed under
    ``k -> -k``, so the sine part of the kernel survives, as in the reference. ``|k|^2`` is formed
    with the reference's float64 arithmetic so ties at the cutoff fall the same way. Fewer than six
    admissible vectors leave masked slots.
    """
    cell = _check_cell(cell, name)
    off_diagonal = cell - np.diag(np.diag(cell))
    if np.max(np.abs(off_diagonal)) > 1e-8:
        raise ValueError(f"{name}: the seed k-set needs an orthorhombic cell, got\n{cell}")
    lengths = np.diag(cell)
    bound = np.maximum((lengths / 10.0).astype(int), 1)
    axes = [np.arange(-b, b + 1) for b in bound]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)
    k_sq = TWO_PI**2 * np.sum((grid / lengths) ** 2, axis=1)
    keep = (k_sq <= (TWO_PI / 10.0) ** 2) & (k_sq > 0)
    if not keep.any():
        raise ValueError(
            f"{name}: the seed k-set (|k| <= 2 pi / 10 A) is empty for box lengths {lengths} A "
            "(every length is under 10 A); the reference model's output would be exactly zero"
        )
    return _pad(grid[keep][:SEED_NUM_K], SEED_NUM_K, name)


# --------------------------------------------------------------------------- host: quadrature


def open_quadrature(
    k_cut: float, envelope_width: float = 0.2, num_radial: int = 48
) -> tuple[np.ndarray, np.ndarray]:
    """Radial nodes and weights of isotropic integrals ``(2 pi)^-3 int_{|k|<=k_cut} d^3k f(|k|)``.

    Open boundaries need no sphere grid: every weighting is a function of ``|k|`` alone, so the
    angular integral of ``e^{i k . r}`` is done exactly, ``sin(|k| r) / (|k| r)``, and the
    attention becomes a pair sum with the radial kernel ``phi(r) = sum_m w_m W(k_m) sinc(k_m r)``
    (:func:`rsajax.nn.rsa.kernel.open_boundary_attention`).
    The ``k^2 / (2 pi^2)`` of the spherical measure is in the weights (it cancels the ``1/k^2``
    of the Ewald weight).

    Radial rule: Gauss-Legendre separately on ``[0, k_on]`` and ``[k_on, k_cut]``
    (``k_on = k_cut (1 - envelope_width)``), so the envelope's C^2 kink falls on a panel edge;
    ``num_radial`` nodes in all, at least 6 on the envelope panel. The kernel is accurate while
    ``k_cut r`` stays below about ``2 (num_radial - 8)`` (:func:`radial_nodes_for`): measured for
    the Ewald kernel, sigma 1.5 A and k_cut 3.06 1/A, 48 nodes keep ``|phi - phi_exact| r`` under
    2e-6 to 25 A and 64 nodes to 40 A.

    Returns:
        nodes (num_radial, 3) in 1/A, the radii ``|k|`` along x; weights (num_radial,) in 1/A^3.
    """
    if not k_cut > 0:
        raise ValueError(f"k_cut must be positive, got {k_cut}")
    k_on = k_cut * (1.0 - envelope_width)
    # The envelope panel holds a quintic times a smooth function: it needs >= 6 Gauss nodes.
    n_outer = max(6, int(round(0.25 * num_radial))) if envelope_width > 0 else 0
    n_inner = num_radial - n_outer
    if n_inner < 2:
        raise ValueError(f"num_radial={num_radial} is too small (need >= {n_outer + 2})")
    radii, radial_weights = [], []
    for lo, hi, count in ((0.0, k_on, n_inner), (k_on, k_cut, n_outer)):
        if count == 0:
            continue
        x, w = np.polynomial.legendre.leggauss(count)
        radii.append(lo + (hi - lo) * (x + 1.0) / 2.0)
        radial_weights.append(w * (hi - lo) / 2.0)
    radii, radial_weights = np.concatenate(radii), np.concatenate(radial_weights)
    nodes = np.zeros((radii.size, 3))
    nodes[:, 0] = radii
    return nodes, radial_weights * radii**2 / (2.0 * np.pi**2)


def radial_nodes_for(k_cut: float, diameter: float) -> int:
    """Radial nodes that resolve the open-boundary kernel over distances up to ``diameter`` (A).

    Gauss-Legendre integrates ``sin(k r)`` on ``[0, k_cut]`` to round-off once the node count is
    about half the phase ``k_cut r`` plus a few; measured (see :func:`open_quadrature`), with 25%
    head room on the phase.
    """
    return max(16, int(np.ceil(0.5 * 1.25 * k_cut * diameter)) + 8)


def structure_diameter(positions: np.ndarray, block: int = 256) -> float:
    """The largest interatomic distance, A: invariant under rotations and translations, like the
    kernel it sizes (a bounding box's diagonal is not: it grows by up to sqrt(3) when a structure
    turns, so a k-set sized for a structure refused the same structure rotated). Pairs in blocks
    of ``block`` rows: memory ``O(N block)``, cheap beside the ``O(N^2 M)`` kernel it serves."""
    positions = np.asarray(positions, np.float64).reshape(-1, 3)
    largest = 0.0
    for start in range(0, positions.shape[0], block):
        rows = positions[start : start + block]
        largest = max(largest, float(np.max(np.sum((rows[:, None] - positions) ** 2, axis=-1))))
    return float(np.sqrt(largest))


# --------------------------------------------------------------------------- host: batches


def real_graphs(graph) -> np.ndarray:
    """(G,) bool: the graphs of a batch that hold atoms (real, not padding, not empty)."""
    return np.asarray(graph.graph_mask, bool) & (np.asarray(graph.n_node) > 0)


def _stack(sets: list, m_max: int | None) -> tuple[np.ndarray, np.ndarray]:
    counts = [int(s[1].sum()) for s in sets if s is not None]
    needed = max(counts, default=1)
    m_max = needed if m_max is None else m_max
    if needed > m_max:
        raise ValueError(f"a graph needs {needed} k-vectors but m_max={m_max}")
    n = np.zeros((len(sets), m_max, 3), np.int32)
    mask = np.zeros((len(sets), m_max), bool)
    for g, s in enumerate(sets):
        if s is not None:
            count = int(s[1].sum())
            n[g, :count], mask[g, :count] = s[0][:count], True
    return n, mask


def max_num_k(
    cells: np.ndarray,
    pbcs: np.ndarray,
    k_cut: float,
    margin: float = 0.1,
    num_radial: int = 48,
) -> int:
    """The ``m_max`` that fits every structure of a dataset (cells (S, 3, 3), pbcs (S, 3)).

    Pass it to :func:`build_kset` (e.g. ``kset_fn=partial(build_kset, k_cut=..., m_max=...)``)
    so that every batch has the same static k shape; under NPT add head room for the volume.
    Open-boundary structures need ``num_radial`` slots.
    """
    sizes = [1]
    for index, (cell, pbc) in enumerate(zip(np.asarray(cells), np.asarray(pbcs), strict=True)):
        if np.any(pbc):
            sizes.append(int(integer_kset(cell, k_cut, margin, name=f"structure {index}")[1].sum()))
        else:
            sizes.append(num_radial)
    return max(sizes)


def build_kset(
    graph,
    k_cut: float,
    *,
    margin: float = 0.1,
    m_max: int | None = None,
    envelope_width: float = 0.2,
    lattice_only: bool = False,
    num_radial: int = 48,
    max_nodes: int | None = None,
) -> KSet:
    """Choose the k-set of every real graph of a :class:`rsajax.graph.Graph` (host side).

    Periodic or mixed graphs (any ``pbc`` True) get the integer set of :func:`integer_kset`;
    open graphs (``pbc`` all False) get the radial rule of :func:`open_quadrature`, and raise if
    their extent needs more radial nodes than ``num_radial`` (:func:`radial_nodes_for`); padding
    graphs get nothing.

    Args:
        graph: the batch (numpy or jax arrays; read on the host).
        k_cut: envelope cutoff in 1/A.
        margin: extra selection radius for lattice sets (see :func:`kset_covers`).
        m_max: static number of slots per graph (default: the largest need in this batch).
        envelope_width: relative width of the envelope's fall to 0 at ``k_cut``.
        lattice_only: set by modes that only make sense on a lattice (``ones`` weights); an open
            graph then raises instead of silently getting a quadrature.
        num_radial: radial nodes for open graphs.
        max_nodes: static node slots per graph (:attr:`KSet.node_slots`; the largest structure
            the k-set function will see); None: no slots, the kernel masks the whole batch.
    """
    cells, pbc = np.asarray(graph.cell, np.float64), np.asarray(graph.pbc, bool)
    real = real_graphs(graph)
    periodic = pbc.any(axis=1)
    if lattice_only and np.any(real & ~periodic):
        bad = np.flatnonzero(real & ~periodic).tolist()
        raise ValueError(
            f"graphs {bad} have open boundaries (pbc all False) but this mode is lattice-only; "
            "use the 'ewald' or 'learned' weighting, which integrate over continuous k"
        )
    sets: list = []
    for g in range(len(cells)):
        if real[g] and periodic[g]:
            sets.append(integer_kset(cells[g], k_cut, margin, name=f"graph {g}"))
        else:
            sets.append(None)
    has_open = bool(np.any(real & ~periodic))
    need = max([int(s[1].sum()) for s in sets if s is not None] + [num_radial * has_open, 1])
    n, mask = _stack(sets, need if m_max is None else m_max)
    nodes = np.zeros(n.shape, np.float64)
    node_weights = np.zeros(mask.shape, np.float64)
    if has_open:
        quad = open_quadrature(k_cut, envelope_width, num_radial)
        positions = np.asarray(graph.positions, np.float64)
        node_graph = np.asarray(graph.node_graph)
        node_mask = np.asarray(graph.node_mask, bool)
        for g in np.flatnonzero(real & ~periodic):
            if num_radial > n.shape[1]:
                raise ValueError(
                    f"graph {g}: the radial rule has {num_radial} nodes but m_max={n.shape[1]}"
                )
            diameter = structure_diameter(positions[(node_graph == g) & node_mask])
            if radial_nodes_for(k_cut, diameter) > num_radial:
                raise ValueError(
                    f"graph {g}: open-boundary structure {diameter:.1f} A across needs "
                    f"{radial_nodes_for(k_cut, diameter)} radial k nodes at k_cut={k_cut:g} 1/A "
                    f"but the k-set has num_radial={num_radial}; size it from every structure "
                    "with make_kset_fn(config, structures) or raise RSAConfig.num_radial"
                )
            nodes[g, :num_radial], node_weights[g, :num_radial] = quad
            mask[g, :num_radial] = True
    return KSet(
        n=n,
        nodes=nodes,
        node_weights=node_weights,
        mask=mask,
        periodic=periodic & real,
        k_cut=float(k_cut),
        envelope_width=float(envelope_width),
        smooth=True,
        has_open=has_open,
        pair_index=None if has_open else inversion_pairs(n, mask),
        node_slots=None if max_nodes is None else graph_node_slots(graph, max_nodes),
    )


def graph_node_slots(graph, max_nodes: int) -> np.ndarray:
    """(G, max_nodes) int32: the real nodes of each graph in order, -1 on the empty slots.

    Raises ValueError naming the graph if one has more than ``max_nodes`` real nodes.
    """
    node_graph = np.asarray(graph.node_graph)
    node_mask = np.asarray(graph.node_mask, bool)
    num_graphs = np.asarray(graph.cell).shape[0]
    counts = np.bincount(node_graph[node_mask], minlength=num_graphs)
    if counts.max(initial=0) > max_nodes:
        g = int(np.argmax(counts))
        raise ValueError(
            f"graph {g} has {counts[g]} atoms but the k-set function was sized for at most "
            f"{max_nodes}; build it with every structure it will see (make_kset_fn)"
        )
    slots = np.full((num_graphs, max_nodes), -1, np.int32)
    nodes = np.flatnonzero(node_mask)
    graphs = node_graph[nodes]
    order = np.argsort(graphs, kind="stable")
    nodes, graphs = nodes[order], graphs[order]
    first = np.concatenate([[0], np.cumsum(counts)[:-1]])
    slots[graphs, np.arange(len(nodes)) - first[graphs]] = nodes
    return slots


def build_seed_kset(graph) -> KSet:
    """The reference model's k-set (:func:`seed_kset`) for every real graph; unit weights.

    Raises for open-boundary graphs: the reference placed molecules in a fixed box, which makes
    the energy depend on orientation; rsajax refuses rather than reproduce that silently.
    """
    cells, pbc = np.asarray(graph.cell, np.float64), np.asarray(graph.pbc, bool)
    real = real_graphs(graph)
    sets: list = []
    for g in range(len(cells)):
        if real[g] and not pbc[g].all():
            raise ValueError(
                f"graph {g}: seed mode is lattice-only and needs a fully periodic orthorhombic "
                f"cell, got pbc={pbc[g].tolist()}"
            )
        sets.append(seed_kset(cells[g], name=f"graph {g}") if real[g] else None)
    n, mask = _stack(sets, SEED_NUM_K)
    return KSet(
        n=n,
        nodes=np.zeros(n.shape),
        node_weights=np.zeros(mask.shape),
        mask=mask,
        periodic=real.copy(),
        k_cut=SEED_K_CUT,
        smooth=False,
    )
