"""The host function that chooses a batch's k-set, made once per dataset; the placeholder k-set.

:func:`make_kset_fn` returns ``kset_fn`` (``Graph -> KSet``) for a model's :class:`RSAConfig` and
every structure it will see: one static number of slots (or one static grid for
``evaluation="mesh"``, :func:`make_mesh_kset_fn`), every structure checked up front. Pass it as
``kset_fn`` to :func:`rsajax.data.collate`, ``atoms_to_graph`` or ``GraphDataset``.
:func:`init_kset` is the all-masked k-set a model is initialised with (shapes do not depend on M).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from rsajax.nn.rsa.config import RSAConfig
from rsajax.nn.rsa.grid import MeshSpec, build_mesh_kset, mesh_spec
from rsajax.nn.rsa.kset import (
    SEED_K_CUT,
    KSet,
    build_kset,
    build_seed_kset,
    integer_kset,
    max_num_k,
    radial_nodes_for,
    real_graphs,
    seed_kset,
    structure_diameter,
)


def _cells_and_pbcs(structures: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
    """(S, 3, 3) cells and (S, 3) pbcs of ASE Atoms, GraphRecords or (real graphs of) Graphs."""
    cells, pbcs = [], []
    for s in structures:
        cell = np.asarray(s.cell, np.float64)
        pbc = np.broadcast_to(np.asarray(s.pbc, bool), cell.shape[:-1])
        if cell.ndim == 3:  # a batched Graph: its real graphs only
            real = real_graphs(s)
            cells += list(cell[real])
            pbcs += list(pbc[real])
        else:
            cells.append(cell)
            pbcs.append(pbc)
    if not cells:
        raise ValueError("make_kset_fn needs at least one structure to size the k-set")
    return np.stack(cells), np.stack(pbcs)


def make_kset_fn(
    config: RSAConfig,
    structures: Sequence[Any],
    m_max: int | None = None,
    *,
    margin: float = 0.0,
) -> Callable[[Any], KSet]:
    """The host function ``Graph -> KSet`` for a dataset, with one static ``m_max``.

    Every structure is checked now (empty k-set, open boundaries in a lattice-only mode, seed
    mode on a non-orthorhombic or small cell), so errors name the structure before training.
    With ``evaluation="mesh"`` the static grid (:class:`~rsajax.nn.rsa.grid.MeshSpec`, exposed
    as ``kset_fn.mesh``) is sized here for every structure with ``config.margin`` of head room,
    and every structure must be fully periodic. With ``evaluation="auto"`` the kernel is chosen
    here by :func:`choose_evaluation`; ``kset_fn.evaluation`` says which.

    Args:
        config: the model's long-range configuration.
        structures: every structure the function will see: ASE Atoms, ``GraphRecord``s or Graphs.
        m_max: a floor for the number of k slots (head room for NPT; the dataset's need wins;
            unused by the mesh, whose head room is ``config.margin``).
        margin: relative extra radius of the direct k-set (lattice vectors, or the open-boundary
            quadrature's reach) for structures that change after it is built: MD passes
            ``config.margin`` (NPT head room, :func:`rsajax.md.adapter.long_range_kset`). A
            dataset's cells are fixed, and vectors beyond ``k_cut`` have zero weight there: 0 (the
            default) leaves them out, a quarter of the default split's vectors.
    Returns:
        ``kset_fn`` for :func:`rsajax.data.collate`, ``atoms_to_graph`` and ``GraphDataset``.
    """
    if not config.is_resolved:
        raise ValueError(
            "make_kset_fn needs a resolved RSAConfig (sigma and k_cut are derived from the "
            "model's r_max): pass model.config.long_range, or RSAConfig(...).resolved(r_max)"
        )
    cells, pbcs = _cells_and_pbcs(structures)
    open_ = ~pbcs.any(axis=1)
    evaluation = config.evaluation
    if evaluation == "auto":
        evaluation = choose_evaluation(
            config, cells, pbcs, _largest_structure(structures), margin=margin
        )
    if evaluation == "mesh":
        return make_mesh_kset_fn(cells, pbcs, config.k_cut, **mesh_options(config))
    lattice_only = config.seed or config.weighting == "ones"
    if lattice_only and open_.any():
        bad = np.flatnonzero(open_).tolist()
        mode = "seed" if config.seed else "weighting 'ones'"
        raise ValueError(
            f"structures {bad} have open boundaries (pbc all False) but {mode} is lattice-only; "
            "use weighting 'ewald' or 'learned', which integrate over continuous k"
        )
    if config.seed:
        for index, (cell, pbc) in enumerate(zip(cells, pbcs, strict=True)):
            if not pbc.all():
                raise ValueError(
                    f"structure {index}: seed mode needs a fully periodic cell, "
                    f"got pbc={pbc.tolist()}"
                )
            seed_kset(cell, name=f"structure {index}")
        return build_seed_kset
    _check_k_cut_selects(cells, config.k_cut, np.flatnonzero(~open_))
    num_radial = config.num_radial
    if num_radial is None:  # resolve the largest open structure, with the margin as head room
        diameter = max(_open_diameters(structures), default=0.0) * (1.0 + margin)
        num_radial = radial_nodes_for(config.k_cut, diameter)
    need = max_num_k(cells, pbcs, config.k_cut, margin, num_radial)
    slots = max(need, m_max or 0)
    max_nodes = _largest_structure(structures)

    def kset_fn(graph) -> KSet:
        return build_kset(
            graph,
            config.k_cut,
            margin=margin,
            m_max=slots,
            envelope_width=config.envelope_width,
            lattice_only=lattice_only,
            num_radial=num_radial,
            # node slots need the nodes' graphs (a host view of cells alone gets none)
            max_nodes=max_nodes if hasattr(graph, "node_graph") else None,
        )

    kset_fn.m_max = slots
    kset_fn.num_radial = num_radial
    kset_fn.evaluation = "direct"
    return kset_fn


#: Time of one unit of mesh work (:func:`mesh_work`) over one unit of direct work
#: (:func:`direct_work`), measured with RSA-MACE energy and forces (the default preset, float32)
#: on random silica boxes by ``benchmarks/rsa_scaling.py --tables 7`` (its ``unit cost``
#: column: the RSA part, RSA-MACE's time minus SR-MACE's, per kernel) on a 2-core CPU, after the
#: direct kernel's phases moved to :func:`rsajax.phases.cos_turns`: 8.7 at 1536 atoms and 6.9 at
#: 3000, near where the two kernels cross (5.8 and 5.3 before). The mesh's gathers, scatters and
#: FFTs cost more per unit than the direct kernel's dense matmuls. Accelerators change the ratio:
#: rerun the table there and compare.
MESH_WORK_COST = 7.8

#: The most direct work (atom-k pairs, :func:`direct_work`) the ``auto`` choice gives the direct
#: kernel, whatever the cost model says: its energy and forces keep several (atoms, k-vectors)
#: phase and cotangent arrays alive, about 40 bytes per pair in float32 (XLA's peak for
#: RSA-MACE minus SR-MACE, default split, silica: 1.26 GB at 3000 atoms, 3.3e7 pairs; 0.28 GB
#: at 1536). 1e8 pairs (about 5500 atoms of silica) is about 4 GB.
DIRECT_MAX_WORK = 1e8


def direct_work(num_atoms: int, num_k: int) -> float:
    """Work units of the direct lattice sum of one structure: atom-k pairs, over half of the
    ``num_k`` vectors (the kernel sums one of each ``(n, -n)`` pair)."""
    return float(num_atoms) * 0.5 * float(num_k)


def mesh_work(num_atoms: int, grid_shape: Sequence[int], order: int) -> float:
    """Work units of the mesh evaluation of one structure: B-spline spreading and interpolation
    (``order^3`` grid points per atom, each way) and the forward and inverse FFTs
    (``K log2 K`` each, ``K`` grid points)."""
    points = float(np.prod(grid_shape))
    return 2.0 * num_atoms * order**3 + 2.0 * points * np.log2(max(points, 2.0))


def mesh_options(config: RSAConfig) -> dict:
    """The grid options of ``config`` as :func:`~rsajax.nn.rsa.grid.mesh_spec` and
    :func:`make_mesh_kset_fn` take them (the grid always keeps ``config.margin`` of head room:
    its interpolation error grows as the grid shrinks towards the Nyquist limit of ``k_cut``)."""
    return dict(
        order=config.mesh_order,
        oversampling=config.mesh_oversampling,
        margin=config.margin,
        envelope_width=config.envelope_width,
    )


def choose_evaluation(
    config: RSAConfig,
    cells: np.ndarray,
    pbcs: np.ndarray,
    num_atoms: int,
    margin: float = 0.0,
) -> str:
    """``direct`` or ``mesh``: the cheaper kernel for structures of cells (S, 3, 3), pbcs (S, 3)
    and at most ``num_atoms`` atoms, by the measured cost model (:data:`MESH_WORK_COST`), the
    direct k-set sized with ``margin`` of head room (:func:`make_kset_fn`).

    ``direct`` whenever the mesh cannot run: open or slab boundaries, the seed k-set, unit
    (``ones``) weights. Otherwise the largest structure decides (it sets the static shapes every
    batch pays for): the mesh when ``MESH_WORK_COST * mesh_work < direct_work``.
    """
    if config.seed or config.weighting == "ones" or not pbcs.all():
        return "direct"
    num_k = max_num_k(cells, pbcs, config.k_cut, margin)
    direct = direct_work(num_atoms, num_k)
    if direct > DIRECT_MAX_WORK:
        return "mesh"  # the direct kernel's phase matrices would not fit in memory
    spec = mesh_spec(cells, pbcs, config.k_cut, **mesh_options(config))
    mesh = MESH_WORK_COST * mesh_work(num_atoms, spec.shape, config.mesh_order)
    return "mesh" if mesh < direct else "direct"


def _largest_structure(structures: Sequence[Any]) -> int:
    """The most atoms in one structure among ASE Atoms, GraphRecords or (real graphs of) Graphs."""
    sizes = [1]
    for s in structures:
        if hasattr(s, "numbers"):  # Atoms, GraphRecord
            sizes.append(len(s.numbers))
        elif hasattr(s, "node_graph"):  # a batched Graph
            node_graph = np.asarray(s.node_graph)[np.asarray(s.node_mask, bool)]
            sizes.append(int(np.bincount(node_graph).max(initial=0)))
        elif hasattr(s, "n_node"):  # a host view of a batch: node counts only
            sizes.append(int(np.max(np.asarray(s.n_node), initial=0)))
    return max(sizes)


def _check_k_cut_selects(cells: np.ndarray, k_cut: float, indices) -> None:
    """Raise, naming the structure, if ``k_cut`` selects no lattice vector of a cell (checked
    strictly inside ``k_cut``, not just within the margin)."""
    for index in indices:
        integer_kset(cells[index], k_cut, margin=0.0, name=f"structure {index}")


def _open_diameters(structures: Sequence[Any]) -> list[float]:
    """Diameters (A, :func:`~rsajax.nn.rsa.kset.structure_diameter`) of the open-boundary
    structures among ``structures``."""
    out = []
    for s in structures:
        pbc = np.asarray(s.pbc, bool)
        if pbc.ndim == 2:  # a batched Graph
            real = real_graphs(s)
            open_graphs = np.flatnonzero(real & ~pbc.any(axis=1))
            if open_graphs.size == 0:  # positions and nodes unread: host views may lack them
                continue
            positions = np.asarray(s.positions, np.float64)
            node_graph = np.asarray(s.node_graph)
            node_mask = np.asarray(s.node_mask, bool)
            for g in open_graphs:
                out.append(structure_diameter(positions[(node_graph == g) & node_mask]))
        elif not pbc.any():
            positions = s.get_positions() if hasattr(s, "get_positions") else s.positions
            out.append(structure_diameter(positions))
    return out


def make_mesh_kset_fn(
    cells: np.ndarray,
    pbcs: np.ndarray,
    k_cut: float,
    *,
    order: int = 6,
    oversampling: float = 2.0,
    margin: float = 0.1,
    envelope_width: float = 0.2,
) -> Callable:
    """``kset_fn`` (``Graph -> KSet``) with one grid sized for every structure of a dataset.

    What :func:`make_kset_fn` returns for ``evaluation="mesh"``; the grid is
    ``kset_fn.mesh``. Args as :func:`~rsajax.nn.rsa.grid.mesh_spec`; cells (S, 3, 3), pbcs (S, 3).

    Raises:
        ValueError naming the structures that are not fully periodic or whose ``k_cut`` selects
        no reciprocal lattice vector.
    """
    cells, pbcs = np.asarray(cells, np.float64), np.asarray(pbcs, bool)
    not_periodic = ~pbcs.all(axis=1)
    if not_periodic.any():
        bad = np.flatnonzero(not_periodic).tolist()
        raise ValueError(
            f"structures {bad} are not fully periodic (pbc={pbcs[bad[0]].tolist()} for "
            f"structure {bad[0]}) but RSAConfig.evaluation='mesh' is a lattice sum on a periodic "
            "grid; use evaluation='direct' (open boundaries: quadrature over continuous k)"
        )
    _check_k_cut_selects(cells, k_cut, range(len(cells)))
    spec = mesh_spec(
        cells,
        pbcs,
        k_cut,
        order=order,
        oversampling=oversampling,
        margin=margin,
        envelope_width=envelope_width,
    )

    def kset_fn(graph) -> KSet:
        return build_mesh_kset(graph, spec)

    kset_fn.mesh = spec
    kset_fn.m_max = 1
    kset_fn.evaluation = "mesh"
    return kset_fn


def placeholder_kset(graph) -> KSet:
    """An all-masked k-set of one slot for parameter initialisation (shapes do not depend on M)."""
    num_graphs = np.asarray(graph.cell).shape[0]
    return KSet(
        n=np.zeros((num_graphs, 1, 3), np.int32),
        nodes=np.zeros((num_graphs, 1, 3)),
        node_weights=np.zeros((num_graphs, 1)),
        mask=np.zeros((num_graphs, 1), bool),
        periodic=np.zeros(num_graphs, bool),
        k_cut=SEED_K_CUT,
        smooth=False,
    )


def init_kset(config: RSAConfig, graph) -> KSet:
    """:func:`placeholder_kset` of the kind ``config`` expects (it passes
    :func:`rsajax.nn.rsa.layer.check_kset`)."""
    kset = placeholder_kset(graph)
    if config.seed:
        return kset
    mesh = None
    if config.evaluation == "mesh":  # a smallest grid; all graphs non-periodic, weights 0
        mesh = MeshSpec(
            (config.mesh_order,) * 3, config.mesh_order, float(config.k_cut),
            float(config.envelope_width), float(config.mesh_oversampling),
        )  # fmt: skip
    return kset.replace(
        k_cut=float(config.k_cut),
        envelope_width=float(config.envelope_width),
        smooth=True,
        mesh=mesh,
    )
