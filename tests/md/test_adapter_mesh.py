"""RSA-MACE with the mesh evaluation inside jax-md: the grid is sized at allocation (with the
config's margin), jax-md's energy, forces and stress equal rsajax.potential's, and a box the grid
no longer resolves is reported so the run reallocates."""

import jax.numpy as jnp
import numpy as np

from rsajax.data import atoms_to_graph
from rsajax.md.adapter import long_range_kset, model_system
from rsajax.nn.model import init_model
from rsajax.nn.rsa import RSAConfig, make_kset_fn
from rsajax.potential import energy_fn_from_model, make_potential
from tests.md.conftest import tiny_config, triclinic_silica
from tests.md.test_adapter import jax_md_labels


def test_rsa_mace_mesh_in_jax_md_equals_rsajax_potential():
    rsa = RSAConfig(
        k_cut=1.2, weighting="ewald", sigma=2.0, num_heads=1, channels=None, combine="residual",
        evaluation="mesh",
    )  # fmt: skip
    model, variables = init_model(tiny_config(long_range=rsa), seed=1)
    atoms = triclinic_silica()
    box = atoms.cell.array.T
    system = model_system(model, variables, atoms.numbers, box)
    kset = long_range_kset(model, atoms.numbers, box)
    assert kset.mesh is not None and kset.mesh == make_kset_fn(rsa, [atoms]).mesh
    R = jnp.asarray(atoms.get_scaled_positions())
    e, forces, stress = jax_md_labels(system, R, system.allocate(R), jnp.asarray(box))

    graph = atoms_to_graph(atoms, model.config.r_max, kset_fn=make_kset_fn(rsa, [atoms]))
    ref = make_potential(energy_fn_from_model(model))(variables, graph)
    n = len(atoms)
    np.testing.assert_allclose(e, ref["energy"][0], rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(forces, ref["forces"][:n], atol=1e-11)
    np.testing.assert_allclose(stress, ref["stress"][0], atol=1e-12)

    # within the margin the grid keeps its accuracy; a 30% larger box is reported
    assert system.check_boxes(np.stack([box, 1.03 * box])) is None
    reason = system.check_boxes((box * 1.3)[None])
    assert reason is not None and "RSA mesh" in reason
    assert system.rebuild(box * 1.3).check_boxes((box * 1.3)[None]) is None
