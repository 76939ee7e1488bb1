"""Unit checks of the MACE pieces: contraction vs mace's einsum recursion, config, save/load."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from rsajax.data import atoms_to_graph
from rsajax.nn import mace
from rsajax.nn.model import MACEConfig, init_model, load_model, save_model
from rsajax.potential import energy_fn_from_model, make_potential
from tests.structures import triclinic
from tests.tiny_models import tiny_config

small_config = tiny_config


def contraction_reference(x, one_hot, us, ws):
    """mace-torch's Horner-style einsum recursion, the reference for ``SymmetricContraction``.

    Args:
        x: (N, C, d). one_hot: (N, E). us[nu-1]: (M, d, ..., d, K_nu). ws[nu-1]: (E, K_nu, C).
    Returns:
        (N, C, M).
    """
    out = None
    for nu in range(len(us), 0, -1):
        wn = jnp.einsum("ne,ekc->nkc", one_hot, ws[nu - 1])
        c = jnp.einsum("m...k,nkc->ncm...", us[nu - 1], wn)
        if out is not None:
            c = c + out
        out = jnp.einsum("ncm...i,nci->ncm...", c, x)
    return out


@pytest.mark.parametrize("l_out", [0, 1, 2])
def test_symmetric_contraction_matches_einsum_recursion(l_out):
    ls_in, corr, channels, n, n_el = (0, 1, 2), 3, 4, 5, 2
    rng = np.random.default_rng(l_out)
    x = rng.normal(size=(n, channels, 9))
    one_hot = np.eye(n_el)[rng.integers(0, n_el, n)]
    module = mace.SymmetricContraction(ls_in, (l_out,), corr, n_el)
    variables = module.init(jax.random.PRNGKey(0), x, one_hot)
    out = module.apply(variables, x, one_hot)[l_out]
    sc_c, sc_p = variables["constants"], variables["params"]
    us = [sc_c[f"U_{l_out}_{nu}"] for nu in range(1, corr + 1)]
    ws = [sc_p[f"W_{l_out}_{nu}"] for nu in range(1, corr + 1)]
    ref = contraction_reference(x, one_hot, us, ws)
    np.testing.assert_allclose(out, ref, rtol=1e-12, atol=1e-12)
    assert np.abs(ref).max() > 1e-3


@pytest.mark.parametrize("degree", [1, 2, 3, 4])
def test_contract_monomials_value_and_gradient_match_explicit_products(degree):
    """The Horner top degree and the custom monomial backward pass against plain products."""
    channels, n, d, p = 2, 3, 4, 3
    rng = np.random.default_rng(degree)
    x = rng.normal(size=(channels, n, d))
    tuples = [mace.symmetric_monomials(d, nu) for nu in range(1, degree + 1)]
    bases = [rng.normal(size=(channels, len(t), p)) for t in tuples]
    cotangent = rng.normal(size=(channels, n, p))

    def explicit(x):
        out = 0.0
        for t, basis in zip(tuples, bases, strict=True):
            monos = jax.numpy.prod(x[..., t], axis=-1)  # (C, N, J)
            out = out + jax.numpy.einsum("cnj,cjp->cnp", monos, basis)
        return jax.numpy.sum(out * cotangent)

    def fast(x):
        return jax.numpy.sum(mace.contract_monomials(x, bases) * cotangent)

    np.testing.assert_allclose(fast(x), explicit(x), rtol=1e-12)
    np.testing.assert_allclose(jax.grad(fast)(x), jax.grad(explicit)(x), rtol=1e-11, atol=1e-12)
    np.testing.assert_allclose(
        jax.jit(jax.grad(fast))(x), jax.grad(explicit)(x), rtol=1e-11, atol=1e-12
    )

    # Training differentiates forces: reverse over reverse through the custom backward pass.
    def force_loss(f):
        return lambda x: jax.numpy.sum(jax.grad(f)(x) ** 2)

    np.testing.assert_allclose(
        jax.jit(jax.grad(force_loss(fast)))(x),
        jax.grad(force_loss(explicit))(x),
        rtol=1e-10,
        atol=1e-12,
    )


def test_fresh_basis_is_equivariant():
    """Rotating x by D(R) rotates the contraction output by D_L(R)."""
    import e3nn_jax as e3nn

    ls_in, l_out = (0, 1, 2), 2
    irreps = e3nn.Irreps("0e+1o+2e")
    q, r = np.linalg.qr(np.random.default_rng(1).normal(size=(3, 3)))
    rot = q * np.sign(np.diag(r)) * np.sign(np.linalg.det(q * np.sign(np.diag(r))))
    d_in = np.asarray(irreps.D_from_matrix(rot))
    d_out = np.asarray(e3nn.Irreps("2e").D_from_matrix(rot))
    x = np.random.default_rng(0).normal(size=(3, 2, 9))
    one_hot = np.eye(2)[[0, 1, 1]]
    module = mace.SymmetricContraction(ls_in, (l_out,), 3, 2)
    variables = module.init(jax.random.PRNGKey(0), x, one_hot)
    out = module.apply(variables, x, one_hot)[l_out]
    out_rot = module.apply(variables, x @ d_in.T, one_hot)[l_out]
    np.testing.assert_allclose(out_rot, out @ d_out.T, atol=1e-10)


def test_config_json_roundtrip_and_validation():
    config = small_config(correlation=(3, 2))
    again = MACEConfig.from_dict(json.loads(json.dumps(config.to_dict())))
    assert again == config and again.hidden_irreps == "3x0e+3x1o"
    with pytest.raises(ValueError, match="natural parity"):
        small_config(num_channels=None, max_L=None, hidden_irreps="3x0e+3x1e")
    with pytest.raises(ValueError, match="silu_normalization"):
        small_config(silu_normalization="other")
    with pytest.raises(ValueError, match="unknown MACEConfig fields"):
        MACEConfig.from_dict({**config.to_dict(), "bogus": 1})


def test_config_is_an_architecture_plus_dataset_info():
    """Each hyperparameter is declared once: MACEConfig's fields are MACEArchitecture's, then
    DatasetInfo's, then the dtype; the training config's model section is MACEArchitecture."""
    import dataclasses

    from rsajax.nn.model import DatasetInfo, MACEArchitecture
    from rsajax.train.config import TrainConfig

    names = [f.name for f in dataclasses.fields(MACEConfig)]
    parts = [f.name for cls in (MACEArchitecture, DatasetInfo) for f in dataclasses.fields(cls)]
    assert names == parts + ["dtype"] and len(set(names)) == len(names)
    assert TrainConfig().model == MACEArchitecture()
    config = small_config(correlation=(3, 2))
    rebuilt = MACEConfig.build(config.architecture, config.dataset_info, dtype=config.dtype)
    assert rebuilt == config
    assert config.dataset_info.atomic_numbers == config.atomic_numbers
    with pytest.raises(ValueError, match="same length"):
        DatasetInfo(atomic_numbers=(1, 8), atomic_energies=(0.0,))
    assert MACEArchitecture(num_channels=4, max_L=1).hidden_irreps == "4x0e+4x1o"
    assert MACEArchitecture(hidden_irreps="8x0e").num_channels == 8


def test_save_load_and_remat_give_same_numbers(tmp_path):
    config = small_config()
    model, variables = init_model(config, seed=2)
    graph = atoms_to_graph(triclinic(), config.r_max)
    out = make_potential(energy_fn_from_model(model))(variables, graph)
    loaded, loaded_vars = load_model(save_model(tmp_path / "m", config, variables))
    again = make_potential(energy_fn_from_model(loaded))(loaded_vars, graph)
    remat = init_model(small_config(remat=True), seed=2)[0]
    with_remat = make_potential(energy_fn_from_model(remat))(variables, graph)
    for key in ("energy", "forces", "stress"):
        np.testing.assert_array_equal(again[key], out[key])
        np.testing.assert_allclose(with_remat[key], out[key], rtol=1e-12, atol=1e-14)


def test_hessian_matches_finite_differences_of_forces():
    """jax.hessian goes forward over the custom monomial backward pass (phonons need it)."""
    config = small_config()
    model, variables = init_model(config)
    graph = atoms_to_graph(triclinic(), config.r_max)
    n = int(graph.n_node[0])

    def energy(positions):
        return model.apply(variables, graph.replace(positions=positions)).sum()

    positions = graph.positions
    hessian = jax.hessian(energy)(positions)[:n, :, :n, :]
    np.testing.assert_allclose(hessian, hessian.transpose(2, 3, 0, 1), atol=1e-10)
    grad = jax.jit(jax.grad(energy))
    step = 1e-5
    for atom, axis in [(0, 0), (n - 1, 2)]:
        shift = np.zeros(positions.shape)
        shift[atom, axis] = step
        column = (grad(positions + shift) - grad(positions - shift))[:n] / (2 * step)
        np.testing.assert_allclose(hessian[:, :, atom, axis], column, rtol=1e-6, atol=1e-7)
    assert np.abs(hessian).max() > 1e-2
