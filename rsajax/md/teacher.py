"""The BKS silica teacher (:mod:`rsajax.teachers.bks`) as an :class:`~rsajax.md.adapter.MDSystem`.

The teacher's energy function already follows jax-md's contract and its neighbour list handles box
changes; its supercell replication and Ewald k-vectors are sized at construction for boxes within
``strain_margin`` of the construction box, which is the host-side check here.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from rsajax.md.adapter import MDSystem, strain_margin_check
from rsajax.teachers import BKS, BKSParameters, bks_silica


def bks_system(
    numbers,
    box: np.ndarray,
    *,
    params: BKSParameters = BKS,
    skin: float = 0.5,
    strain_margin: float = 0.1,
    capacity_multiplier: float = 1.25,
) -> MDSystem:
    """BKS silica for atoms ``numbers`` (Si, O) in the column-major ``box``."""
    box = np.asarray(box, dtype=np.float64)
    teacher = bks_silica(
        numbers,
        box,
        params=params,
        skin=skin,
        strain_margin=strain_margin,
        capacity_multiplier=capacity_multiplier,
    )
    check = strain_margin_check(box, strain_margin, "the BKS supercell and Ewald k-set")

    def energy_fn(R, neighbor, box=None, perturbation=None, **kwargs):
        # jax-md's NPT passes the isotropic perturbation as the scalar 1 + eps
        if perturbation is not None and jnp.ndim(perturbation) == 0:
            perturbation = perturbation * jnp.eye(3, dtype=R.dtype)
        return teacher.energy_fn(R, neighbor, box=box, perturbation=perturbation, **kwargs)

    def rebuild(new_box: np.ndarray) -> MDSystem:
        return bks_system(
            numbers,
            new_box,
            params=params,
            skin=skin,
            strain_margin=strain_margin,
            capacity_multiplier=capacity_multiplier,
        )

    return MDSystem(
        energy_fn=energy_fn,
        neighbor_fn=teacher.neighbor_fn,
        shift_fn=teacher.shift_fn,
        box=box,
        numbers=np.asarray(numbers),
        masses=teacher.masses,
        list_cutoff=params.r_cut + skin,
        skin=skin,
        strain_skin=0.0,
        box_checks=(check,),
        rebuild=rebuild,
    )


def lennard_jones_system(
    numbers,
    box: np.ndarray,
    *,
    sigma: float = 2.0,
    epsilon: float = 0.01,
    r_cut: float = 3.0,
    skin: float = 0.5,
    strain_skin: float = 0.2,
    capacity_multiplier: float = 1.25,
) -> MDSystem:
    """A shifted Lennard-Jones liquid on the same jax-md neighbour lists as the model adapter: a
    cheap reference for integrator checks (NPT against jax-md's own pressure) and differentiable
    MD, with ``variables = {"sigma", "epsilon"}`` as the parameters."""
    from ase.data import atomic_masses
    from jax_md import partition, space

    from rsajax.md.adapter import minimum_image_check

    numbers = np.asarray(numbers)
    box = np.asarray(box, dtype=np.float64)
    displacement_fn, shift_fn = space.periodic_general(box, fractional_coordinates=True)
    neighbor_fn = partition.neighbor_list(
        displacement_fn,
        box,
        r_cut + strain_skin,
        dr_threshold=skin,
        capacity_multiplier=capacity_multiplier,
        format=partition.NeighborListFormat.Sparse,
        fractional_coordinates=True,
        disable_cell_list=True,
    )
    box0 = box

    def energy_with_params(variables, R, neighbor, box=None, perturbation=None, **unused):
        b = jnp.asarray(box0 if box is None else box, R.dtype)
        n = R.shape[0]
        i, j = neighbor.idx[0], neighbor.idx[1]
        listed = i < n
        i, j = jnp.where(listed, i, 0), jnp.where(listed, j, 1)
        kwargs = {"box": b} if perturbation is None else {"box": b, "perturbation": perturbation}
        d = jax.vmap(lambda a, c: displacement_fn(a, c, **kwargs))(R[i], R[j])
        r2 = jnp.sum(d**2, axis=-1)
        inside = listed & (r2 < r_cut**2)
        s2 = variables["sigma"] ** 2 / jnp.where(inside, r2, 1.0)  # double where: no NaN
        s2_cut = variables["sigma"] ** 2 / r_cut**2
        pair = 4.0 * variables["epsilon"] * (s2**6 - s2**3 - s2_cut**6 + s2_cut**3)
        return 0.5 * jnp.sum(jnp.where(inside, pair, 0.0))

    variables = {"sigma": jnp.asarray(sigma), "epsilon": jnp.asarray(epsilon)}

    def energy_fn(R, neighbor, box=None, perturbation=None, **unused):
        return energy_with_params(variables, R, neighbor, box=box, perturbation=perturbation)

    list_cutoff = r_cut + strain_skin + skin

    def rebuild(new_box):
        return lennard_jones_system(
            numbers,
            new_box,
            sigma=sigma,
            epsilon=epsilon,
            r_cut=r_cut,
            skin=skin,
            strain_skin=strain_skin,
            capacity_multiplier=capacity_multiplier,
        )

    return MDSystem(
        energy_fn=energy_fn,
        neighbor_fn=neighbor_fn,
        shift_fn=shift_fn,
        box=box,
        numbers=numbers,
        masses=atomic_masses[numbers],
        list_cutoff=list_cutoff,
        skin=skin,
        strain_skin=strain_skin,
        box_checks=(minimum_image_check(list_cutoff),),
        rebuild=rebuild,
        energy_with_params=energy_with_params,
        variables=variables,
    )
