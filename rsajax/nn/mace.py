"""MACE building blocks on per-degree feature blocks.

Equivariant features are stored as ``{l: (N, C, 2l+1)}`` dictionaries (one block per degree,
natural parity only: 0e, 1o, 2e, 3o, ...). This layout makes every linear a plain matmul and the
tensor products small dense contractions, and it matches mace-torch's ``reshape_irreps`` layout
(channel-major, then m) so weights copy over without permutation.

Normalisations follow e3nn (torch) defaults used by mace-torch: linears divide by sqrt(fan_in),
species-indexed linears (``FullyConnectedTensorProduct(x, one_hot(z))``) by sqrt(fan_in *
num_elements), tensor-product paths carry sqrt(2 l_out + 1) with unit-Frobenius Wigner 3j symbols.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence

import e3nn_jax as e3nn
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from rsajax.nn.radial import RadialMLP, normalized_silu

Features = dict[int, jax.Array]


def parse_hidden_irreps(hidden_irreps: str) -> tuple[int, tuple[int, ...]]:
    """``"8x0e+8x1o"`` -> (8, (0, 1)); requires natural parity and one channel count."""
    irreps = e3nn.Irreps(hidden_irreps).simplify()
    channels = {mul for mul, _ in irreps}
    ls = tuple(ir.l for _, ir in irreps)
    if len(channels) != 1 or len(set(ls)) != len(ls):
        raise ValueError(f"hidden_irreps {hidden_irreps!r}: need one multiplicity per degree")
    if ls != tuple(range(len(ls))):
        raise ValueError(f"hidden_irreps {hidden_irreps!r}: degrees must be 0, 1, ... without gaps")
    for _, ir in irreps:
        if ir.p != (-1) ** ir.l:
            raise ValueError(f"hidden_irreps {hidden_irreps!r}: only natural parity is supported")
    return channels.pop(), ls


@functools.cache
def wigner_3j(l1: int, l2: int, l3: int) -> np.ndarray:
    """(2l1+1, 2l2+1, 2l3+1) unit-Frobenius coupling; equals e3nn (torch) for even l1+l2+l3."""
    return np.asarray(e3nn.clebsch_gordan(l1, l2, l3))


def conv_paths(ls_in: Sequence[int], max_ell: int) -> tuple[tuple[int, int, int], ...]:
    """Tensor-product paths (l_node, l_sh, l_out) in mace-torch's order.

    mace-torch enumerates node irreps, then spherical-harmonic degrees, then output degrees, keeps
    natural-parity outputs up to ``max_ell`` and stable-sorts by output degree.
    """
    paths = []
    for l1 in ls_in:
        for l2 in range(max_ell + 1):
            for l3 in range(abs(l1 - l2), min(l1 + l2, max_ell) + 1):
                if (l1 + l2 + l3) % 2 == 0:
                    paths.append((l1, l2, l3))
    return tuple(sorted(paths, key=lambda p: p[2]))


def spherical_harmonics(vectors: jax.Array, max_ell: int) -> Features:
    """Component-normalised real spherical harmonics of unit(vectors): {l: (E, 2l+1)}."""
    irreps = e3nn.Irreps.spherical_harmonics(max_ell)
    sh = e3nn.spherical_harmonics(irreps, vectors, normalize=True, normalization="component")
    return {l: sh.array[:, l * l : (l + 1) * (l + 1)] for l in range(max_ell + 1)}


class IrrepsLinear(nn.Module):
    """e3nn ``o3.Linear`` between per-degree blocks: ``x_l @ W_l / sqrt(C_in)`` per degree."""

    ls: Sequence[int]
    features: int
    param_dtype: jnp.dtype = jnp.float64

    @nn.compact
    def __call__(self, x: Features) -> Features:
        """{l: (N, C_in, 2l+1)} -> {l: (N, features, 2l+1)} for l in ``ls``."""
        out = {}
        for l in self.ls:
            c_in = x[l].shape[1]
            w = self.param(
                f"w{l}", nn.initializers.normal(1.0), (c_in, self.features), self.param_dtype
            ).astype(x[l].dtype)
            out[l] = jnp.einsum("ncm,cd->ndm", x[l], w) / float(np.sqrt(c_in))
        return out


class SpeciesLinear(nn.Module):
    """Linear whose weights depend on the element: mace's skip ``FullyConnectedTensorProduct``
    with the one-hot species, ``x_l @ W_l[z] / sqrt(C_in * num_elements)``."""

    ls: Sequence[int]
    features: int
    num_elements: int
    param_dtype: jnp.dtype = jnp.float64

    @nn.compact
    def __call__(self, x: Features, one_hot: jax.Array) -> Features:
        """{l: (N, C_in, 2l+1)}, (N, num_elements) -> {l: (N, features, 2l+1)}."""
        out = {}
        for l in self.ls:
            n, c_in, m = x[l].shape
            w = self.param(
                f"w{l}",
                nn.initializers.normal(1.0),
                (c_in, self.num_elements, self.features),
                self.param_dtype,
            )
            # (N, m, E*C_in) @ (E*C_in, D): one dense matmul instead of a per-node weight gather.
            xz = jnp.einsum("ncm,ne->nmec", x[l], one_hot).reshape(n, m, -1)
            wz = jnp.transpose(w, (1, 0, 2)).reshape(-1, self.features).astype(x[l].dtype)
            y = (xz @ wz) / float(np.sqrt(c_in * self.num_elements))
            out[l] = jnp.transpose(y, (0, 2, 1))
        return out


class Interaction(nn.Module, kw_only=True):
    """mace-torch ``RealAgnostic[Residual]InteractionBlock`` (attributes by keyword only).

    Attributes:
        ls_in: degrees of the incoming node features.
        ls_skip: degrees the residual skip produces (the product's output degrees).
        channels: C.
        max_ell: spherical-harmonic degree, also the message's highest degree.
        num_elements: rows of the one-hot species encoding.
        radial_mlp: hidden widths of the radial MLP.
        avg_num_neighbors: messages are divided by it (from the training data).
        residual: residual block (skip from the input) or non-residual (species-mixed message).
        silu_norm: SiLU normalisation constant. apply_cutoff: edge features carry the envelope.
    """

    ls_in: Sequence[int]
    ls_skip: Sequence[int]
    channels: int
    max_ell: int
    num_elements: int
    radial_mlp: Sequence[int]
    avg_num_neighbors: float
    residual: bool
    silu_norm: float
    apply_cutoff: bool = True
    param_dtype: jnp.dtype = jnp.float64

    @nn.compact
    def __call__(
        self,
        h: Features,
        one_hot: jax.Array,
        sh: Features,
        edge_feats: jax.Array,
        cutoff: jax.Array,
        senders: jax.Array,
        receivers: jax.Array,
    ) -> tuple[Features, Features | None]:
        """Message to every node and the residual skip.

        Args:
            h: {l: (N, C, 2l+1)} node features. one_hot: (N, num_elements).
            sh: {l: (E, 2l+1)}. edge_feats: (E, num_bessel), zero on padded edges.
            cutoff: (E,) envelope, zero on padded edges.
        Returns:
            ({l: (N, C, 2l+1)} for l <= max_ell, skip {l: (N, C, 2l+1)} or None).
        """
        dt = self.param_dtype
        sc = None
        if self.residual:
            ls = [l for l in self.ls_skip if l in self.ls_in]
            sc = SpeciesLinear(ls, self.channels, self.num_elements, dt, name="skip_tp")(h, one_hot)
            num_nodes, dtype = one_hot.shape[0], h[0].dtype
            # Degrees absent from the input have no path in mace's skip product: zero skip.
            sc = {
                l: sc.get(l, jnp.zeros((num_nodes, self.channels, 2 * l + 1), dtype))
                for l in self.ls_skip
            }
        h = IrrepsLinear(self.ls_in, self.channels, dt, name="linear_up")(h)
        paths = conv_paths(self.ls_in, self.max_ell)
        weights = RadialMLP(
            (*self.radial_mlp, len(paths) * self.channels),
            self.silu_norm,
            dt,
            name="conv_tp_weights",
        )(edge_feats)
        if not self.apply_cutoff:
            weights = weights * cutoff[:, None]
        weights = weights.reshape(weights.shape[0], len(paths), self.channels)
        h_src = {l: h[l][senders] for l in self.ls_in}
        num_nodes = one_hot.shape[0]
        per_degree: dict[int, list[jax.Array]] = {l: [] for l in range(self.max_ell + 1)}
        for p, (l1, l2, l3) in enumerate(paths):
            cg = jnp.asarray(wigner_3j(l1, l2, l3) * np.sqrt(2 * l3 + 1), h_src[l1].dtype)
            coupling = (sh[l2] @ cg.transpose(1, 0, 2).reshape(2 * l2 + 1, -1)).reshape(
                -1, 2 * l1 + 1, 2 * l3 + 1
            )  # (E, 2l1+1, 2l3+1)
            weighted = h_src[l1] * weights[:, p, :, None]  # (E, C, 2l1+1)
            # Tiny per-edge matrices: broadcast-and-sum fuses, a batched dot would not.
            mji = jnp.sum(weighted[:, :, :, None] * coupling[:, None, :, :], axis=2)
            per_degree[l3].append(jax.ops.segment_sum(mji, receivers, num_segments=num_nodes))
        message = {l: jnp.concatenate(blocks, axis=1) for l, blocks in per_degree.items()}
        ls_out = tuple(range(self.max_ell + 1))
        message = IrrepsLinear(ls_out, self.channels, dt, name="linear")(message)
        message = {l: m / self.avg_num_neighbors for l, m in message.items()}
        if not self.residual:
            message = SpeciesLinear(ls_out, self.channels, self.num_elements, dt, name="skip_tp")(
                message, one_hot
            )
        return message, sc


def symmetric_monomials(d: int, degree: int) -> np.ndarray:
    """(J, degree) sorted index tuples i1 <= ... <= i_degree over range(d)."""
    return np.array(list(itertools.combinations_with_replacement(range(d), degree)), dtype=np.int32)


@functools.cache
def _tuples_of_monomial(d: int, degree: int) -> np.ndarray:
    """(J, R) the ordered index tuples (as flat indices into ``d**degree``) of each sorted
    monomial, padded with ``d**degree`` (a zero row); ``R`` is the largest class size."""
    lookup = {tuple(t): j for j, t in enumerate(symmetric_monomials(d, degree))}
    members: list[list[int]] = [[] for _ in lookup]
    for flat, t in enumerate(itertools.product(range(d), repeat=degree)):
        members[lookup[tuple(sorted(t))]].append(flat)
    table = np.full((len(members), max(map(len, members))), d**degree, dtype=np.int32)
    for j, tuples in enumerate(members):
        table[j, : len(tuples)] = tuples
    return table


def symmetrize_basis(u: jax.Array, degree: int) -> jax.Array:
    """Fold a coupling tensor over its symmetric index classes.

    A gather of each class's members and a sum, not a scatter-add: with the model's variables
    bound into a jitted MD step, ``u`` is a constant and XLA folds this at compile time, where a
    scatter is evaluated element by element (seconds for d = 16, degree 3) and a gather is not.

    Args:
        u: (M, d, ..., d, K) with ``degree`` d-axes.
    Returns:
        (J, M, K) such that ``sum_{i...} u[m, i..., k] x_i... = sum_j out[j, m, k] monomial_j(x)``.
    """
    m, d, k = u.shape[0], u.shape[1], u.shape[-1]
    flat = jnp.moveaxis(u.reshape(m, d**degree, k), 1, 0)
    flat = jnp.concatenate([flat, jnp.zeros((1, m, k), flat.dtype)])
    return jnp.sum(flat[_tuples_of_monomial(d, degree)], axis=1)


@functools.cache
def _tail_starts(d: int, num_lower: int) -> np.ndarray:
    """(d,) index of the first of the ``num_lower`` lower monomials whose leading index is >= a."""
    for degree in range(1, 16):
        lower = symmetric_monomials(d, degree)
        if len(lower) == num_lower:
            return np.searchsorted(lower[:, 0], np.arange(d))
    raise ValueError(f"{num_lower} is not a number of monomials in {d} variables")


def _extend_forward(x: jax.Array, lower: jax.Array) -> jax.Array:
    d, j_lower = x.shape[-1], lower.shape[-1]
    starts = _tail_starts(d, j_lower)
    # Monomials starting with index a are x_a times the lower monomials whose first index >= a:
    # a contiguous tail, so the new degree is d scaled slices, concatenated.
    return jnp.concatenate([x[..., a : a + 1] * lower[..., starts[a] :] for a in range(d)], -1)


@functools.cache
def _extend_selectors(d: int, j_lower: int) -> tuple[np.ndarray, np.ndarray]:
    """0/1 matrices ``(d, J_new)`` and ``(J_lower, J_new)`` that pick, for each new monomial, its
    leading variable and its lower monomial: ``new = (x @ S_x) * (lower @ S_lower)``."""
    starts = _tail_starts(d, j_lower)
    leading = np.concatenate([np.full(j_lower - s, a) for a, s in enumerate(starts)])
    tail = np.concatenate([np.arange(s, j_lower) for s in starts])
    columns = np.arange(len(leading))
    s_x, s_lower = np.zeros((d, len(leading))), np.zeros((j_lower, len(leading)))
    s_x[leading, columns] = 1.0
    s_lower[tail, columns] = 1.0
    return s_x, s_lower


@jax.custom_vjp
def extend_monomials(x: jax.Array, lower: jax.Array) -> jax.Array:
    """Monomials one degree higher: (..., d), (..., J_k) -> (..., J_{k+1}) in sorted-tuple order.

    Forward: ``d`` scaled slices, concatenated (cheapest for energies and MD). Backward: two
    matmuls with constant 0/1 selectors (:func:`_extend_selectors`). Autodiff of the slices would
    make ``d`` zero-padded full-size cotangents per degree; a backward written with slices
    brings the same back one order up, when training differentiates the forces (``x`` was read
    by 152 slices for d = 16, and their padded cotangents took half of a training step). With
    the matmuls, ``x`` and ``lower`` each enter the backward pass once.
    """
    return _extend_forward(x, lower)


def _extend_fwd(x, lower):
    return _extend_forward(x, lower), (x, lower)


def _extend_bwd(residuals, g):
    x, lower = residuals
    s_x, s_lower = _extend_selectors(x.shape[-1], lower.shape[-1])
    s_x, s_lower = jnp.asarray(s_x, g.dtype), jnp.asarray(s_lower, g.dtype)
    return (g * (lower @ s_lower)) @ s_x.T, (g * (x @ s_x)) @ s_lower.T


extend_monomials.defvjp(_extend_fwd, _extend_bwd)


@functools.cache
def _top_degree_index(d: int, degree: int) -> np.ndarray:
    """(J_{degree-1}, d) index of the monomial (a, *tuple_p) for lower monomial p and a leading
    index a <= tuple_p[0]; J_degree (a zero row) where that tuple is not sorted."""
    lookup = {tuple(t): j for j, t in enumerate(symmetric_monomials(d, degree))}
    lower = symmetric_monomials(d, degree - 1)
    index = np.full((len(lower), d), len(lookup), dtype=np.int32)
    for p, t in enumerate(lower):
        for a in range(int(t[0]) + 1):
            index[p, a] = lookup[(a, *map(int, t))]
    return index


def _batched_matmul(a: jax.Array, b: jax.Array) -> jax.Array:
    """(C, N, J) @ (C, J, P) -> (C, N, P), batched over the leading channel axis."""
    return jax.lax.dot_general(a, b, (((2,), (1,)), ((0,), (0,))))


def contract_monomials(x: jax.Array, bases: Sequence[jax.Array]) -> jax.Array:
    """``sum_nu m_nu(x) @ bases[nu - 1]`` per channel, ``m_nu`` the degree-nu monomials in sorted
    index order (:func:`extend_monomials`), without ever building the top degree's.

    The top degree is evaluated Horner-style, ``sum_a x_a (m_{nu-1}(x) @ B'_a)`` with
    ``B'`` the top basis regrouped by leading index: the largest monomial array (816 entries per
    channel for d=16, nu=3) is never built, and all work is dense batched matmuls.

    Args:
        x: (C, N, d). bases[nu - 1]: (C, J_nu, P).
    Returns:
        (C, N, P).
    """
    top = len(bases)
    if top == 1:
        return _batched_matmul(x, bases[0])
    c, _, d = x.shape
    p = bases[0].shape[-1]
    lower = [x]
    for _ in range(2, top):
        lower.append(extend_monomials(x, lower[-1]))
    padded = jnp.concatenate([bases[-1], jnp.zeros((c, 1, p), bases[-1].dtype)], axis=1)
    regrouped = padded[:, _top_degree_index(d, top)]  # (C, J_{top-1}, d, P)
    head = jnp.concatenate([bases[top - 2], regrouped.reshape(c, regrouped.shape[1], d * p)], -1)
    t = _batched_matmul(lower[-1], head)
    out = t[..., :p] + jnp.einsum("cna,cnap->cnp", x, t[..., p:].reshape(*t.shape[:2], d, p))
    for nu in range(1, top - 1):
        out = out + _batched_matmul(lower[nu - 1], bases[nu - 1])
    return out


@functools.cache
def fresh_coupling_basis(ls_in: Sequence[int], l_out: int, degree: int) -> np.ndarray:
    """(2L+1, d, ..., d, K) symmetric coupling basis from e3nn-jax, for models not from torch."""
    irreps = e3nn.Irreps("+".join(f"{l}{'e' if l % 2 == 0 else 'o'}" for l in ls_in))
    ir = e3nn.Irrep(l_out, (-1) ** l_out)
    basis = e3nn.reduced_symmetric_tensor_product_basis(irreps, degree, keep_ir=[ir])
    arr = np.asarray(basis.array)
    k = arr.shape[-1] // ir.dim
    arr = arr.reshape(arr.shape[:-1] + (k, ir.dim))
    return np.moveaxis(arr, -1, 0)


class SymmetricContraction(nn.Module):
    """mace-torch ``SymmetricContraction``: per output degree L,
    ``B[n,c,m] = sum_nu sum_k W_nu[z_n,k,c] sum_i U_nu[m,i1..i_nu,k] x[n,c,i1]..x[n,c,i_nu]``.

    U_nu live in the ``constants`` collection (copied from torch or built by e3nn-jax at init).
    Evaluation folds U_nu onto symmetric monomials and the weights of each element into it, then
    :func:`contract_monomials` does the per-node work as batched matmuls over channels (all
    elements and output degrees in one). This is exact and avoids mace-torch's (N, C, d, ..., d)
    intermediates.
    """

    ls_in: Sequence[int]
    ls_out: Sequence[int]
    correlation: int
    num_elements: int
    param_dtype: jnp.dtype = jnp.float64

    def _coupling(self, l_out: int, nu: int) -> jax.Array:
        """U_nu for output degree l_out, (2L+1, d, ..., d, K)."""
        ls_in = tuple(self.ls_in)
        var = self.variable(
            "constants",
            f"U_{l_out}_{nu}",
            lambda: jnp.asarray(fresh_coupling_basis(ls_in, l_out, nu), self.param_dtype),
        )
        return var.value

    def _weights(self, l_out: int, nu: int, k: int, channels: int) -> jax.Array:
        """(num_elements, K, C) weights of order nu (mace: ``weights_max`` / ``weights.i``)."""
        return self.param(
            f"W_{l_out}_{nu}",
            nn.initializers.normal(1.0 / max(k, 1)),
            (self.num_elements, k, channels),
            self.param_dtype,
        )

    @nn.compact
    def __call__(self, x: jax.Array, one_hot: jax.Array) -> Features:
        """(N, C, d), (N, E) -> {L: (N, C, 2L+1)}."""
        num_nodes, channels, d = x.shape
        sizes = [2 * l + 1 for l in self.ls_out]
        bases = []  # per nu: (C, J_nu, E * sum(2L+1)), every element and output degree at once
        for nu in range(1, self.correlation + 1):
            per_l = []
            for l_out in self.ls_out:
                u = self._coupling(l_out, nu).astype(x.dtype)
                w = self._weights(l_out, nu, u.shape[-1], channels).astype(x.dtype)
                if u.shape[-1] == 0:
                    shape = (self.num_elements, len(symmetric_monomials(d, nu)), 2 * l_out + 1)
                    per_l.append(jnp.zeros((*shape, channels), x.dtype))
                else:
                    per_l.append(jnp.einsum("jmk,ekc->ejmc", symmetrize_basis(u, nu), w))
            folded = jnp.concatenate(per_l, axis=2)  # (E, J, M, C)
            bases.append(jnp.transpose(folded, (3, 1, 0, 2)).reshape(channels, folded.shape[1], -1))
        res = contract_monomials(jnp.transpose(x, (1, 0, 2)), bases)
        res = res.reshape(channels, num_nodes, self.num_elements, sum(sizes))
        # Each node keeps its own element's result; the other elements' work is the price of
        # one dense matmul per channel instead of a per-node weight gather.
        res = jnp.einsum("cnem,ne->ncm", res, one_hot)
        bounds = np.cumsum([0, *sizes])
        return {l: res[..., bounds[i] : bounds[i + 1]] for i, l in enumerate(self.ls_out)}


class ProductBasis(nn.Module, kw_only=True):
    """mace-torch ``EquivariantProductBasisBlock``: contraction, linear, plus the skip
    (attributes by keyword only)."""

    ls_in: Sequence[int]
    ls_out: Sequence[int]
    channels: int
    correlation: int
    num_elements: int
    param_dtype: jnp.dtype = jnp.float64

    @nn.compact
    def __call__(self, message: Features, one_hot: jax.Array, sc: Features | None) -> Features:
        """{l: (N, C, 2l+1)} message -> {L: (N, C, 2L+1)} features of the next layer."""
        x = jnp.concatenate([message[l] for l in self.ls_in], axis=-1)
        h = SymmetricContraction(
            self.ls_in,
            self.ls_out,
            self.correlation,
            self.num_elements,
            self.param_dtype,
            name="symmetric_contractions",
        )(x, one_hot)
        h = IrrepsLinear(self.ls_out, self.channels, self.param_dtype, name="linear")(h)
        if sc is not None:
            h = {l: h[l] + sc[l] for l in self.ls_out}
        return h


class LinearReadout(nn.Module):
    """Scalar channels -> one energy per node, ``h0 @ w / sqrt(C)``."""

    param_dtype: jnp.dtype = jnp.float64

    @nn.compact
    def __call__(self, h: Features) -> jax.Array:
        """{0: (N, C, 1), ...} -> (N,)."""
        return IrrepsLinear((0,), 1, self.param_dtype, name="linear")(h)[0][:, 0, 0]


class NonLinearReadout(nn.Module):
    """Scalars -> MLP hidden (normalised SiLU) -> one energy per node."""

    mlp_features: int
    silu_norm: float
    param_dtype: jnp.dtype = jnp.float64

    @nn.compact
    def __call__(self, h: Features) -> jax.Array:
        """{0: (N, C, 1), ...} -> (N,)."""
        x = IrrepsLinear((0,), self.mlp_features, self.param_dtype, name="linear_1")(h)
        x = {0: normalized_silu(x[0], self.silu_norm)}
        return IrrepsLinear((0,), 1, self.param_dtype, name="linear_2")(x)[0][:, 0, 0]
