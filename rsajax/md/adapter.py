"""An rsajax model as a jax-md energy function, on jax-md's own neighbour lists.

``energy_fn(R, neighbor, box=None, perturbation=None) -> E`` with ``R`` (N, 3) fractional
coordinates and ``box`` column-major (``box = atoms.cell.T``), jax-md's contract for
``periodic_general(fractional_coordinates=True)``. The model's :class:`~rsajax.graph.Graph` is
built on device from the Sparse neighbour list:

- Cartesian positions are ``space.transform(B, R)`` with ``B = perturbation @ box`` (jax-md's
  custom JVP makes ``-dE/dR`` the Cartesian force), and the graph's cell is ``B.T`` (rows).
- Each listed pair gets the integer offset that wraps its fractional difference into
  [-1/2, 1/2), so ``edge_vectors`` equals jax-md's ``displacement_fn(R_i, R_j, box, perturbation)``
  for every edge and its derivative with respect to the strain is the virial.
- Padded slots of the list (index N) become edges of a padding node in a padding graph whose cell
  is 1000 A wide: masked, never zero length, contributing nothing.

Neighbour lists and NPT: jax-md rebuilds a list when an atom moved more than half the skin; a box
change alone does not trigger a rebuild. :func:`update_neighbors` forces one when the box strained
by more than ``strain_skin`` allows. Host-side validity (minimum image, and any model structure
fixed at allocation such as an RSA k-set) is checked by :meth:`MDSystem.check_boxes` between
chunks; :meth:`MDSystem.rebuild` reallocates outside jit.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from ase.data import atomic_masses
from jax_md import partition, space

from rsajax.errors import InputError
from rsajax.graph import Graph, pad_graph
from rsajax.lattice import perpendicular_widths

#: ``check(boxes (T, 3, 3)) -> None or a reason`` for a host-side structure fixed at allocation.
BoxCheck = Callable[[np.ndarray], "str | None"]


def box_strain(box: jnp.ndarray, reference: jnp.ndarray) -> jnp.ndarray:
    """Spectral-norm bound ``|B B_ref^-1 - 1|``: pair vectors change by at most this fraction."""
    deformation = box @ jnp.linalg.inv(reference) - jnp.eye(3, dtype=box.dtype)
    return jnp.linalg.norm(deformation, ord=2)


def strained_box(box: jnp.ndarray, perturbation) -> jnp.ndarray:
    """``perturbation @ box`` for a (3, 3) perturbation, ``perturbation * box`` for a scalar one
    (jax-md's NPT passes the scalar ``1 + eps``)."""
    if perturbation is None:
        return box
    perturbation = jnp.asarray(perturbation, dtype=box.dtype)
    return perturbation * box if perturbation.ndim == 0 else perturbation @ box


def graph_from_neighbors(
    numbers: jnp.ndarray,
    R: jnp.ndarray,
    idx: jnp.ndarray,
    B: jnp.ndarray,
    cutoff: float,
    total_charge: float = 0.0,
) -> Graph:
    """The model's Graph for fractional ``R`` (N, 3), a Sparse list ``idx`` (2, K), box ``B``.

    Edges are the K list slots (receiver ``idx[0]``, sender ``idx[1]``); slots that are padding
    (index N) or farther than ``cutoff`` are masked. Positions carry jax-md's transform JVP.
    ``total_charge`` is the system's net charge in e (``Graph.total_charge``; read by RSA models
    with ``net_charge``).
    """
    n = R.shape[0]
    dt = R.dtype
    receivers, senders = idx[0], idx[1]
    listed = (senders < n) & (receivers < n)
    receivers = jnp.where(listed, receivers, n)
    senders = jnp.where(listed, senders, n)
    R_pad = jnp.concatenate([R, jnp.zeros((1, 3), dt)])
    # offsets wrap the fractional difference exactly as space.periodic_displacement does
    d_frac = jax.lax.stop_gradient(R_pad[receivers] - R_pad[senders])
    offsets = -jnp.floor(d_frac + 0.5)
    d_cart = (d_frac + offsets) @ jax.lax.stop_gradient(B).T
    within = jnp.sum(d_cart**2, axis=-1) < cutoff**2
    edge_mask = listed & within
    offsets = jnp.where(listed[:, None], offsets, jnp.array([1.0, 0.0, 0.0], dt))
    return pad_graph(
        species=numbers.astype(jnp.int32),
        positions=space.transform(B, R),
        node_graph=jnp.zeros(n, jnp.int32),
        cell=B.T[None],
        pbc=jnp.ones((1, 3), bool),
        n_node=jnp.array([n], jnp.int32),
        n_edge=jnp.sum(edge_mask, dtype=jnp.int32)[None],
        weight=jnp.ones(1, dt),
        senders=senders,
        receivers=receivers,
        cell_offsets=offsets.astype(jnp.int32),
        edge_mask=edge_mask,
        num_edges=idx.shape[1],
        total_charge=jnp.full(1, total_charge, dt),
    )


def _allocation_graph(numbers: np.ndarray, box: np.ndarray) -> Graph:
    """Host-side (numpy) :func:`graph_from_neighbors` graph without edges, for the k-set builders
    (node positions are placeholders: the one real graph is periodic, so none are read)."""
    n = len(numbers)
    return pad_graph(
        species=np.asarray(numbers, np.int32),
        positions=np.zeros((n, 3)),
        node_graph=np.zeros(n, np.int32),
        cell=np.asarray(box, np.float64).T[None],
        pbc=np.ones((1, 3), bool),
        n_node=np.array([n]),
        n_edge=np.array([0]),
        weight=np.ones(1),
        senders=np.zeros(0, np.int32),
        receivers=np.zeros(0, np.int32),
        cell_offsets=np.zeros((0, 3), np.int32),
    )


def long_range_kset(model, numbers: np.ndarray, box: np.ndarray, *, box_may_strain: bool = True):
    """The RSA k-set of a long-range model for allocation ``box`` (None for short-range models).

    Integer k-vectors (or, for ``evaluation="mesh"``, the grid ``kset.mesh``, sized with the
    config's margin) are fixed here, on the host; the Cartesian vectors follow the (strained)
    box inside the energy, so forces, virial and NPT are exact while the set or grid still covers
    the box (:func:`kset_check`).

    Args:
        box_may_strain: keep the config's ``margin`` of head room (vectors beyond ``k_cut`` that
            a strained box pulls inside it). A fixed box (NVT, NVE) needs none: the shell beyond
            ``k_cut`` has zero weight, and leaving it out saves ~25% of the vectors at the default
            margin of 0.1 with identical energies.
    """
    rsa = model.config.long_range
    if rsa is None:
        return None
    from rsajax.nn.rsa.kset_fn import make_kset_fn

    graph = _allocation_graph(numbers, box)
    # the mesh grid keeps config.margin either way (make_kset_fn): its interpolation needs it
    margin = rsa.margin if box_may_strain else 0.0
    return make_kset_fn(rsa, [graph], margin=margin)(graph)


def kset_check(kset, k_cut: float) -> BoxCheck:
    """A box check: does the allocation's integer k-set still hold every ``|k| <= k_cut``? For a
    mesh k-set: does the grid still resolve them at the oversampling it was sized with?"""
    from rsajax.nn.rsa.kset import kset_covers

    if kset.mesh is not None:
        return _mesh_check(kset.mesh)

    n, mask = np.asarray(kset.n[0]), np.asarray(kset.mask[0])

    def check(boxes: np.ndarray) -> str | None:
        for b in np.asarray(boxes, dtype=np.float64).reshape(-1, 3, 3):
            if not kset_covers(b.T, n, mask, k_cut):
                return "the box left the range the RSA k-set covers (new k-vectors below k_cut)"
        return None

    return check


def _mesh_check(mesh) -> BoxCheck:
    def check(boxes: np.ndarray) -> str | None:
        for b in np.asarray(boxes, dtype=np.float64).reshape(-1, 3, 3):
            if not mesh.covers(b.T, mesh.oversampling):
                return (
                    f"the box left the range the RSA mesh {mesh.shape} covers (|k| <= "
                    f"{mesh.k_cut} 1/A no longer resolved at oversampling {mesh.oversampling})"
                )
        return None

    return check


def make_model_energy(
    model,
    numbers: np.ndarray,
    box: np.ndarray,
    cutoff: float,
    kset=None,
    long_range_part: bool = False,
    total_charge: float = 0.0,
) -> Callable:
    """``energy(variables, R, neighbor, box=None, perturbation=None) -> E`` (parameters explicit,
    for differentiable MD). ``box`` defaults to the allocation box; ``kset`` is the RSA k-set of
    a long-range model (:func:`long_range_kset`). With ``long_range_part`` it returns
    ``(E, E_long_range)`` (:func:`rsajax.potential.energy_fn_from_model`). ``total_charge``: the
    system's net charge in e."""
    from rsajax.potential import energy_fn_from_model

    numbers = jnp.asarray(np.asarray(numbers), jnp.int32)
    box0 = np.asarray(box, dtype=np.float64)
    model_energy = energy_fn_from_model(model, long_range_part=long_range_part)

    def energy(variables, R, neighbor, box=None, perturbation=None, **unused):
        b = jnp.asarray(box0 if box is None else box, dtype=R.dtype)
        B = strained_box(b, perturbation)
        graph = graph_from_neighbors(numbers, R, neighbor.idx, B, cutoff, total_charge)
        if kset is not None:
            graph = graph.replace(kset=kset)
        out = model_energy(variables, graph)
        if long_range_part:
            return out[0][0], out[1][0]
        return out[0]

    return energy


@dataclasses.dataclass(frozen=True, kw_only=True)
class MDSystem:
    """Everything a jax-md integrator needs, for one allocation box (built by keyword).

    Attributes:
        energy_fn: ``energy_fn(R, neighbor, box=None, perturbation=None) -> E`` (eV).
        neighbor_fn: ``allocate(R, box=..., extra_capacity=...)`` / ``update(R, nbrs, box=...)``.
        shift_fn: jax-md shift for fractional coordinates (Cartesian ``dR``).
        box: (3, 3) allocation box, columns are lattice vectors.
        numbers: (N,) atomic numbers; masses: (N,) amu.
        list_cutoff: pairs within this distance (A) are listed (interaction cutoff + skins).
        skin: the list is rebuilt when an atom moved more than ``skin / 2``.
        strain_skin: the part of the list skin reserved for box changes between rebuilds.
        box_checks: host-side checks of the structures fixed at allocation.
        rebuild: ``rebuild(box) -> MDSystem`` for a new allocation box (outside jit).
        energy_with_params: ``(variables, R, neighbor, box=, perturbation=) -> E`` or None.
        variables: the model variables bound into ``energy_fn`` (None for a teacher).
        energy_parts_fn: ``(R, neighbor, box=None, perturbation=None) -> (E, E_long_range)``
            (eV) for a long-range (RSA) model, evaluated at log points only (the thermo log's
            ``E_lr_eV``); None for systems without an RSA part (short-range models, teachers).
        total_charge: net charge of the system in e (written to frames as ``info["charge"]``).
    """

    energy_fn: Callable
    neighbor_fn: object
    shift_fn: Callable
    box: np.ndarray
    numbers: np.ndarray
    masses: np.ndarray
    list_cutoff: float
    skin: float
    strain_skin: float
    box_checks: tuple[BoxCheck, ...]
    rebuild: Callable[[np.ndarray], MDSystem]
    energy_with_params: Callable | None = None
    variables: object = None
    energy_parts_fn: Callable | None = None
    total_charge: float = 0.0
    _cell_list_fns: dict = dataclasses.field(default_factory=dict, repr=False, compare=False)

    @functools.cached_property
    def compiled(self) -> dict:
        """Functions jitted for this system (:mod:`rsajax.md.simulation` keys them by their
        settings). Runs of the same system share them, since a new closure would compile again,
        and they are freed with the system."""
        return {}

    def check_boxes(self, boxes: np.ndarray) -> str | None:
        """None if every box (T, 3, 3) is valid for this allocation, else the first reason."""
        boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 3, 3)
        for check in self.box_checks:
            reason = check(boxes)
            if reason is not None:
                return reason
        return None

    def allocate(self, R: jnp.ndarray, box=None, extra_capacity: int = 0):
        """A neighbour list for ``R`` in ``box`` (default: allocation box), outside jit."""
        b = jnp.asarray(self.box if box is None else box, dtype=R.dtype)
        nbrs = self.neighbor_fn.allocate(R, box=b, extra_capacity=extra_capacity)
        if getattr(nbrs, "cell_size", None) is not None:
            # a jnp scalar in static metadata breaks the next jitted call after reallocation
            nbrs = dataclasses.replace(nbrs, cell_size=float(nbrs.cell_size))
        if getattr(nbrs, "cell_list_fn", None) is not None:
            # Every allocation makes new (equivalent) cell-list functions, which are static
            # pytree metadata: reuse the first of each kind, or every run and every reallocation
            # would retrace and recompile the jitted MD chunk (~8 s for a 648-atom MACE).
            key = (nbrs.cell_list_capacity, nbrs.cell_size, np.asarray(b).tobytes())
            nbrs = dataclasses.replace(
                nbrs, cell_list_fn=self._cell_list_fns.setdefault(key, nbrs.cell_list_fn)
            )
        return nbrs


def minimum_image_check(list_cutoff: float) -> BoxCheck:
    """Boxes must be wider than ``2 list_cutoff`` across every face (fractional wrap = minimum
    image for every listed pair)."""

    def check(boxes: np.ndarray) -> str | None:
        widths = perpendicular_widths(np.swapaxes(boxes, -1, -2)).min()  # boxes: columns
        if widths <= 2.0 * list_cutoff:
            return (
                f"box face width {widths:.3f} A is not above twice the neighbour-list cutoff "
                f"{list_cutoff:.3f} A (minimum image fails); use a larger cell"
            )
        return None

    return check


def model_system(
    model,
    variables,
    numbers: Sequence[int],
    box: np.ndarray,
    *,
    cutoff: float | None = None,
    skin: float = 0.5,
    strain_skin: float = 0.2,
    capacity_multiplier: float = 1.25,
    cell_list: bool | None = None,
    extra_checks: Sequence[BoxCheck] = (),
    total_charge: float = 0.0,
) -> MDSystem:
    """Wrap ``(model, variables)`` as an :class:`MDSystem` for atoms ``numbers`` in ``box``.

    Args:
        numbers: (N,) atomic numbers; every element must be in the model's table.
        box: (3, 3) column-major box (``atoms.cell.T``), any triclinic shape.
        cutoff: interaction cutoff (A), default ``model.config.r_max``.
        skin: jax-md rebuilds the list when an atom moved more than ``skin / 2``.
        strain_skin: extra list radius (A) that box changes between rebuilds may use up. Zero
            states that the box never changes (NVT, NVE): a long-range model's k-set then leaves
            out the head room kept for strain (:func:`long_range_kset`), and the box checks
            refuse a box that the smaller set no longer covers.
        cell_list: use jax-md's cell list (needs an upper-triangular box); default: when the box
            holds at least 4 cells per side.
        extra_checks: further host-side box checks of structures fixed at allocation. A
            long-range model's RSA k-set is built here and checked the same way.
        total_charge: net charge of the system in e (ASE's ``atoms.info["charge"]``): an RSA
            model with ``net_charge`` gives a charged cell its energy with a neutralising
            background, as in training. A short-range model ignores it.
    """
    from rsajax.nn.model import check_species

    config = model.config
    numbers = np.asarray(numbers, dtype=np.int32)
    check_species(config, numbers)
    box = np.asarray(box, dtype=np.float64)
    cutoff = float(config.r_max if cutoff is None else cutoff)
    list_cutoff = cutoff + strain_skin + skin
    kset = long_range_kset(model, numbers, box, box_may_strain=strain_skin > 0.0)
    if kset is not None and config.long_range.seed:
        rsa_checks = (strain_margin_check(box, 0.0, "the seed k-set (fixed, no NPT)"),)
    elif kset is not None:
        rsa_checks = (kset_check(kset, config.long_range.k_cut),)
    else:
        rsa_checks = ()
    checks = (minimum_image_check(list_cutoff), *rsa_checks, *extra_checks)
    reason = checks[0](box[None])
    if reason is not None:
        raise InputError(f"{len(numbers)}-atom system: {reason}")
    upper = np.allclose(box, np.triu(box))
    if cell_list is None:
        widths = perpendicular_widths(box.T)  # box: columns
        cell_list = upper and widths.min() >= 4.0 * (cutoff + strain_skin + skin)
    if cell_list and not upper:
        raise ValueError(
            "jax-md's cell list needs an upper-triangular box (cell.T of a "
            "standard-form ASE cell); pass cell_list=False"
        )
    displacement_fn, shift_fn = space.periodic_general(box, fractional_coordinates=True)
    neighbor_fn = partition.neighbor_list(
        displacement_fn,
        box,
        cutoff + strain_skin,
        dr_threshold=skin,
        capacity_multiplier=capacity_multiplier,
        format=partition.NeighborListFormat.Sparse,
        fractional_coordinates=True,
        disable_cell_list=not cell_list,
    )
    total_charge = float(total_charge)
    energy = make_model_energy(model, numbers, box, cutoff, kset=kset, total_charge=total_charge)

    def energy_fn(R, neighbor, box=None, perturbation=None, **unused):
        return energy(variables, R, neighbor, box=box, perturbation=perturbation)

    energy_parts_fn = None
    if config.long_range is not None:
        parts = make_model_energy(
            model, numbers, box, cutoff, kset=kset, long_range_part=True, total_charge=total_charge
        )

        def energy_parts_fn(R, neighbor, box=None, perturbation=None, **unused):
            return parts(variables, R, neighbor, box=box, perturbation=perturbation)

    def rebuild(new_box: np.ndarray) -> MDSystem:
        return model_system(
            model,
            variables,
            numbers,
            new_box,
            cutoff=cutoff,
            skin=skin,
            strain_skin=strain_skin,
            capacity_multiplier=capacity_multiplier,
            cell_list=None if cell_list is None else cell_list,
            extra_checks=extra_checks,
            total_charge=total_charge,
        )

    masses = atomic_masses[numbers]
    return MDSystem(
        energy_fn=energy_fn,
        neighbor_fn=neighbor_fn,
        shift_fn=shift_fn,
        box=box,
        numbers=numbers,
        masses=masses,
        list_cutoff=list_cutoff,
        skin=skin,
        strain_skin=strain_skin,
        box_checks=checks,
        rebuild=rebuild,
        energy_with_params=energy,
        variables=variables,
        energy_parts_fn=energy_parts_fn,
        total_charge=total_charge,
    )


def update_neighbors(
    system: MDSystem, R: jnp.ndarray, nbrs, box: jnp.ndarray, reference_box: jnp.ndarray
):
    """jax-md's update, plus a forced rebuild when the box strained beyond ``strain_skin``.

    Returns ``(nbrs, reference_box)``; ``reference_box`` is the box of the last build. Works for
    jax-md lists (forces a rebuild by moving the stored reference positions) and for lists that
    handle box changes themselves (the BKS teacher's, detected by ``reference_box``).
    """
    if hasattr(nbrs, "reference_box"):
        nbrs = system.neighbor_fn.update(R, nbrs, box=box)
        return nbrs, nbrs.reference_box
    strained = box_strain(box, reference_box) * system.list_cutoff > system.strain_skin
    # half a box away in every direction: jax-md's move check then always rebuilds
    far = jnp.where(strained, 0.5, 0.0).astype(R.dtype)
    nbrs = dataclasses.replace(nbrs, reference_position=nbrs.reference_position + far)
    nbrs = system.neighbor_fn.update(R, nbrs, box=box)
    return nbrs, jnp.where(strained, box, reference_box)


def strain_margin_check(reference_box: np.ndarray, margin: float, what: str) -> BoxCheck:
    """A check for host-side structures sized at allocation for boxes ``(1 + eps) B_ref`` with
    ``|eps| <= margin`` (a supercell replication, an Ewald or RSA k-set)."""
    reference = np.asarray(reference_box, dtype=np.float64)
    inverse = np.linalg.inv(reference)

    def check(boxes: np.ndarray) -> str | None:
        deformation = boxes @ inverse - np.eye(3)
        strain = np.linalg.norm(deformation, ord=2, axis=(-2, -1)).max()
        if strain > margin:
            return f"box strained by {strain:.3f} from the allocation box; {what} covers {margin}"
        return None

    return check


def core_repulsion_energy(
    numbers: np.ndarray, radii: dict[str, float], strength_eV: float, box: np.ndarray
) -> Callable:
    """``energy(R, neighbor, box=None, perturbation=None) -> E`` of a pair wall
    ``strength_eV * (r_w / r - 1)^2`` for ``r < r_w``, zero beyond (value and force continuous).

    ``radii`` maps pairs ``"Si-O"`` (either order) to ``r_w`` (A); other pairs feel no wall. Each
    pair of a Sparse list (both directions listed) counts half. The atoms' own indices must be
    listed (the model adapter's lists; not the BKS teacher's supercell list). Meant for ``r_w``
    below the closest approach in a model's training data: there the model is undefined (a
    barely trained one may have holes that hot atoms fall into) and the wall is the whole
    short-range physics; at the distances the data covers it is exactly zero.
    """
    from ase.data import atomic_numbers

    numbers = np.asarray(numbers, dtype=np.int32)
    table = np.zeros((119, 119))
    for pair, r_w in radii.items():
        a, b = (atomic_numbers[s.strip()] for s in pair.split("-"))
        table[a, b] = table[b, a] = float(r_w)
    n = len(numbers)
    pair_r = table[numbers][:, numbers]
    box0 = np.asarray(box, dtype=np.float64)

    def energy(R, neighbor, box=None, perturbation=None, **unused):
        dt = R.dtype
        B = strained_box(jnp.asarray(box0 if box is None else box, dtype=dt), perturbation)
        i, j = neighbor.idx[0], neighbor.idx[1]
        listed = (i < n) & (j < n)
        i, j = jnp.where(listed, i, 0), jnp.where(listed, j, 0)
        d_frac = R[i] - R[j]
        d_frac = d_frac - jax.lax.stop_gradient(jnp.floor(d_frac + 0.5))
        r2 = jnp.sum((d_frac @ B.T) ** 2, axis=-1)
        r_w = jnp.asarray(pair_r, dt)[i, j]
        inside = listed & (r_w > 0) & (r2 < r_w**2)
        r = jnp.sqrt(jnp.where(inside, r2, 1.0))
        e = jnp.where(inside, (r_w / r - 1.0) ** 2, 0.0)
        # a Sparse list holds each pair both ways, an OrderedSparse one once
        half = neighbor.format != partition.NeighborListFormat.OrderedSparse
        return (0.5 if half else 1.0) * strength_eV * jnp.sum(e)

    return energy


def with_core_repulsion(
    system: MDSystem, radii: dict[str, float], strength_eV: float = 10.0
) -> MDSystem:
    """``system`` with :func:`core_repulsion_energy` added to every energy it provides (and to
    the systems its ``rebuild`` makes)."""
    wall = core_repulsion_energy(system.numbers, radii, strength_eV, system.box)
    if system.list_cutoff - system.skin - system.strain_skin < max(radii.values(), default=0.0):
        raise ValueError("core repulsion radii must be within the system's interaction cutoff")

    def energy_fn(R, neighbor, box=None, perturbation=None, **kwargs):
        return system.energy_fn(R, neighbor, box=box, perturbation=perturbation, **kwargs) + wall(
            R, neighbor, box=box, perturbation=perturbation
        )

    energy_with_params = None
    if system.energy_with_params is not None:

        def energy_with_params(variables, R, neighbor, box=None, perturbation=None, **kwargs):
            e = system.energy_with_params(
                variables, R, neighbor, box=box, perturbation=perturbation, **kwargs
            )
            return e + wall(R, neighbor, box=box, perturbation=perturbation)

    energy_parts_fn = None
    if system.energy_parts_fn is not None:

        def energy_parts_fn(R, neighbor, box=None, perturbation=None, **kwargs):
            e, e_lr = system.energy_parts_fn(
                R, neighbor, box=box, perturbation=perturbation, **kwargs
            )
            return e + wall(R, neighbor, box=box, perturbation=perturbation), e_lr

    def rebuild(new_box: np.ndarray) -> MDSystem:
        return with_core_repulsion(system.rebuild(new_box), radii, strength_eV)

    return dataclasses.replace(
        system,
        energy_fn=energy_fn,
        rebuild=rebuild,
        energy_with_params=energy_with_params,
        energy_parts_fn=energy_parts_fn,
    )
