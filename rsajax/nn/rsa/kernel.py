"""Reciprocal-space attention (RSA) kernels: pure, batched functions of activated q, k, v.

:func:`reciprocal_space_attention` implements steps 3-5 of ``shared/RSA.md`` as a lattice sum;
:func:`open_boundary_attention` the same for open boundaries as a radial pair sum. The mesh
evaluation of the lattice sum is :func:`rsajax.nn.rsa.mesh.mesh_attention`;
:class:`rsajax.nn.rsa.layer.RSABlock` adds steps 1-2 (``W_lin``, ``W_qkv``, SiLU, ``1/sqrt(C)``)
and the per-k weights (:mod:`rsajax.nn.rsa.weights`). For head ``h`` (channels
``[h D, (h+1) D)``, ``D = C / H``, complex pairs ``(2p, 2p+1)``)::

    u_i = sum_m w_mh Re[ q~_im^T S_m ],   S_m = sum_{j in graph(i)} conj(k~_jm) (x) v_j,
    q~_im = q_i exp(i k_m . r_i)

The contraction is ordered so that no (atoms x k x C x C) array ever exists: the structure factor
``S`` is one matmul over atoms of the phase matrix with ``conj(k_j) (x) v_j``, and the read-out is
one matmul over k followed by a per-atom contraction over ``p``. Memory: ``O(G M C^2 / H)`` for
``S``, ``O(N G M)`` phases, ``O(N C^2 / H)`` per-atom pairs. Batches of several graphs pay a factor
``G`` in the phase matmuls (the phase matrix is block-diagonal in graphs); for many small systems,
``jax.vmap`` over a leading axis of independent systems (one graph each) avoids it.

Structures of a few atoms in large cells (a molecule in a box: many k-vectors per atom) take the
pair kernel instead (:func:`_pair_readout`): ``K_st = sum_m w_m exp(i k_m . (r_s - r_t))`` and
``u_s = sum_t Re[q_s^T K_st k_t* (x) v_t]``, the same sum without the ``(G, M, C^2 / H)``
structure factors (:func:`pair_kernel_is_cheaper` decides from the static shapes).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from rsajax.phases import cos_sin_turns, cos_turns


def neutralize(
    amplitudes: jnp.ndarray,
    node_graph: jnp.ndarray,
    node_mask: jnp.ndarray,
    num_graphs: int,
    total: jnp.ndarray | None = None,
) -> jnp.ndarray:
    """Source amplitudes whose sum over each graph's real nodes is prescribed (zero by default).

    A lattice sum that leaves out ``k = 0`` is the Coulomb-like energy of the cell's charges
    against a uniform neutralising background. For a neutral structure a learned amplitude that
    does not sum to zero adds the energy of a spurious net "charge" against that background,
    which depends on the cell's size and density and which no local term can cancel; removing
    the mean makes ``S(k -> 0) = 0``. A structure that *is* charged (a molecular ion in a box)
    needs its net charge back: ``total`` spreads a prescribed sum evenly over the graph's atoms,
    so the sum is exactly ``total`` whatever the local amplitudes are.

    Args:
        amplitudes: (N, ...) per-node amplitudes (``conj(k_j) (x) v_j``), real or complex.
        node_graph: (N,) graph of each node; node_mask: (N,) real nodes; num_graphs: G.
        total: (G, ...) the sum each graph's amplitudes must have; None: zero.
    Returns:
        (N, ...) amplitudes summing to ``total`` over each graph's real nodes (padded nodes: 0).
    """
    shape = (-1,) + (1,) * (amplitudes.ndim - 1)
    mask = node_mask.reshape(shape)
    amplitudes = jnp.where(mask, amplitudes, 0.0)
    excess = jax.ops.segment_sum(amplitudes, node_graph, num_graphs)
    if total is not None:
        excess = excess - total
    count = jax.ops.segment_sum(node_mask.astype(excess.real.dtype), node_graph, num_graphs)
    mean = excess / jnp.maximum(count, 1.0).reshape(shape)
    return jnp.where(mask, amplitudes - mean[node_graph], 0.0)


def queries_and_amplitudes(
    q: jnp.ndarray,
    k: jnp.ndarray,
    v: jnp.ndarray,
    node_graph: jnp.ndarray,
    node_mask: jnp.ndarray,
    num_graphs: int,
    num_heads: int,
    neutral: bool = False,
    total_amplitude: jnp.ndarray | None = None,
    dispersion_heads: int = 0,
) -> tuple[jnp.ndarray, jnp.ndarray]:
    """The complex queries and the source amplitudes every lattice kernel sums.

    Args:
        q, k, v: (N, C) activated queries, keys, values; head ``h`` holds channels
            ``[h D, (h+1) D)``, complex pairs ``(2p, 2p+1)``.
        node_graph, node_mask, num_graphs: as for :func:`reciprocal_space_attention`.
        num_heads: H.
        neutral: remove each graph's mean amplitude (:func:`neutralize`).
        total_amplitude: (G, H, D/2, D) complex, with ``neutral``: the sum each graph's
            amplitudes keep (a charged structure's net charge); None: zero.
        dispersion_heads: the last ``H_d`` heads are never neutralised: their kernel is finite
            at ``k = 0`` and their sources (like ``C6`` coefficients) need not sum to zero.
    Returns:
        ``qc`` (N, H, D/2) complex queries and ``a = conj(kc) (x) v`` (N, H, D/2, D), zero on
        padded nodes.
    """
    num_nodes, channels = q.shape
    width = channels // num_heads

    def complex_pairs(x):  # (N, C) -> (N, H, D/2)
        x = x.reshape(num_nodes, num_heads, width)
        return x[..., 0::2] + 1j * x[..., 1::2]

    qc, kc = complex_pairs(q), complex_pairs(k)
    values = jnp.where(node_mask[:, None], v, 0.0).reshape(num_nodes, num_heads, width)
    amplitudes = jnp.conj(kc)[..., :, None] * values[..., None, :]
    charged = num_heads - dispersion_heads
    if neutral and charged:
        total = None if total_amplitude is None else total_amplitude[:, :charged]
        neutralised = neutralize(amplitudes[:, :charged], node_graph, node_mask, num_graphs, total)
        amplitudes = jnp.concatenate([neutralised, amplitudes[:, charged:]], axis=1)
    return qc, amplitudes


def zero_frequency_attention(
    q: jnp.ndarray,
    k: jnp.ndarray,
    v: jnp.ndarray,
    zero_weights: jnp.ndarray,
    node_graph: jnp.ndarray,
    num_graphs: int,
    node_mask: jnp.ndarray,
    num_heads: int,
    neutral: bool = False,
    total_amplitude: jnp.ndarray | None = None,
    dispersion_heads: int = 0,
) -> jnp.ndarray:
    """The ``k = 0`` term of the lattice sum: ``u_i = w_0 Re[q_i^T sum_{j in graph(i)} a_j]``.

    The lattice kernels leave ``k = 0`` out; heads whose kernel is finite there (dispersion)
    need it back. Cost ``O(N C^2 / H)``: one segment sum.

    Args:
        q, k, v, node_graph, num_graphs, node_mask, num_heads, neutral, total_amplitude,
            dispersion_heads: as for :func:`reciprocal_space_attention`.
        zero_weights: (G, H) ``k = 0`` weights (measure included;
            :func:`rsajax.nn.rsa.weights.zero_frequency_weights`), 0 for open graphs.
    Returns:
        u: (N, C), zero on padded nodes.
    """
    num_nodes, channels = q.shape
    qc, amplitudes = queries_and_amplitudes(
        q, k, v, node_graph, node_mask, num_graphs, num_heads, neutral, total_amplitude,
        dispersion_heads,
    )  # fmt: skip
    total = jax.ops.segment_sum(amplitudes, node_graph, num_graphs)  # (G, H, D/2, D)
    u = jnp.real(jnp.einsum("nhp,nhpd->nhd", qc, total[node_graph]))
    u = u * zero_weights[node_graph][..., None]
    return jnp.where(node_mask[:, None], u.reshape(num_nodes, channels), 0.0)


def reciprocal_space_attention(
    q: jnp.ndarray,
    k: jnp.ndarray,
    v: jnp.ndarray,
    positions: jnp.ndarray,
    kvectors: jnp.ndarray,
    kweights: jnp.ndarray,
    kmask: jnp.ndarray,
    node_graph: jnp.ndarray,
    num_graphs: int,
    node_mask: jnp.ndarray | None = None,
    num_heads: int = 1,
    paired: bool = False,
    neutral: bool = False,
    last_graph_is_padding: bool = False,
    total_amplitude: jnp.ndarray | None = None,
    node_slots: jnp.ndarray | None = None,
    dispersion_heads: int = 0,
) -> jnp.ndarray:
    """RSA steps 3-5 on already activated queries and keys.

    Args:
        q: (N, C) queries, after ``phi`` and ``1/sqrt(C)``; channels ``0::2`` are real parts,
            ``1::2`` imaginary parts.
        k: (N, C) keys, after ``phi``.
        v: (N, C) values.
        positions: (N, 3) Cartesian positions (not wrapped; phases are periodic anyway).
        kvectors: (G, M, 3) Cartesian k-vectors per graph.
        kweights: (G, M) or (G, M, H) weights (measure, envelope, weighting all included).
        kmask: (G, M) bool; masked slots contribute nothing.
        node_graph: (N,) int graph of each node.
        num_graphs: G (static).
        node_mask: (N,) bool; padded nodes neither contribute nor receive (default: all real).
        num_heads: H; ``C / H`` must be even.
        paired: each slot stands for ``k`` and ``-k`` with the same weight (a half set from
            :attr:`rsajax.nn.rsa.kset.KSet.pair_index`); the result equals the full set's, at
            half the cost.
        neutral: remove each graph's mean source amplitude (:func:`neutralize`) so that the
            sum is that of a neutral cell.
        total_amplitude: (G, H, D/2, D) complex, with ``neutral``: each graph's prescribed
            amplitude sum (a charged cell's net charge; :func:`neutralize`); None: zero.
        last_graph_is_padding: the last graph holds only padding nodes (the
            :class:`rsajax.graph.Graph` contract), so its block of the phase matmuls is skipped:
            half the cost for one structure, ``1/G`` less for a batch.
        node_slots: (G, S) int32 node indices of each graph's real nodes, -1 on empty slots
            (:attr:`rsajax.nn.rsa.kset.KSet.node_slots`): the sums run over each graph's own
            ``S`` nodes, ``O(G S M)``, instead of over all ``N`` nodes of the batch with a mask,
            ``O(N G M)``: ``G`` times less work for a batch of ``G`` similar structures.
        dispersion_heads: the last ``H_d`` heads are not neutralised
            (:func:`queries_and_amplitudes`); their ``k = 0`` term is
            :func:`zero_frequency_attention`'s.
    Returns:
        u: (N, C), zero on padded nodes.
    """
    num_nodes, channels = q.shape
    if channels % (2 * num_heads):
        raise ValueError(f"channels={channels} must be a multiple of 2 * num_heads={num_heads}")
    if node_mask is None:
        node_mask = jnp.ones(num_nodes, dtype=bool)
    positions = jnp.asarray(positions)  # numpy inputs must not be indexed by traced slots
    weights = kweights if kweights.ndim == 3 else kweights[..., None]
    weights = jnp.where(kmask[..., None], weights, 0.0)
    weights = jnp.broadcast_to(weights, kmask.shape + (num_heads,))

    active = num_graphs - 1 if last_graph_is_padding and num_graphs > 1 else num_graphs
    weights = weights[:active]
    qc, pairs = queries_and_amplitudes(
        q, k, v, node_graph, node_mask, num_graphs, num_heads, neutral, total_amplitude,
        dispersion_heads,
    )  # fmt: skip  # (N, H, D/2), (N, H, D/2, D)
    cycles = jnp.asarray(kvectors)[:active] / (2.0 * jnp.pi)  # phases in turns (rsajax.phases)
    features = 2 * pairs[0].size  # F: (head, p, d, re/im) of one atom's amplitudes
    if node_slots is not None and active > 1:
        # Each graph's own nodes, gathered into (G, S) slots: no (node, graph) mask. (One
        # structure gains nothing from the gathers: it takes the masked path below.)
        slots = jnp.asarray(node_slots)[:active]
        filled = slots >= 0
        index = jnp.where(filled, slots, 0)
        if pair_kernel_is_cheaper(slots.shape[1], features):
            readout = _pair_readout(cycles, positions[index], filled, pairs[index], weights, paired)
        else:
            turns = jnp.einsum("gmi,gsi->gsm", cycles, positions[index])  # (G, S, M)
            layout = ("gsm,gsf->gmf", "gsm,gmf->gsf")
            readout = _lattice_readout(turns, filled, pairs[index], weights, paired, *layout)
        u = jnp.real(jnp.einsum("gshp,gshpd->gshd", qc[index], readout))
        u = jnp.where(filled[..., None, None], u, 0.0).reshape(-1, channels)
        u = jnp.zeros((num_nodes, channels), u.dtype).at[index.reshape(-1)].add(u)
        return jnp.where(node_mask[:, None], u, 0.0)
    if active == 1 and pair_kernel_is_cheaper(num_nodes, features):  # one small structure
        member = (node_graph == 0) & node_mask
        readout = _pair_readout(cycles, positions[None], member[None], pairs[None], weights, paired)
        u = jnp.real(jnp.einsum("nhp,nhpd->nhd", qc, readout[0])).reshape(num_nodes, channels)
        return jnp.where(node_mask[:, None], u, 0.0)
    # Every node against its own graph's k-vectors, (N, 1, M), masked to its graph: (N, G, M).
    if active == 1:  # one structure: no per-node gather of the k-vectors
        turns = jnp.einsum("mi,ni->nm", cycles[0], positions)[:, None, :]
    else:
        turns = jnp.einsum("nmi,ni->nm", cycles[node_graph], positions)[:, None, :]
    in_graph = (node_graph[:, None] == jnp.arange(active)[None, :]) & node_mask[:, None]
    layout = ("ngm,nf->gmf", "ngm,gmf->nf")
    readout = _lattice_readout(turns, in_graph, pairs, weights, paired, *layout)
    u = jnp.real(jnp.einsum("nhp,nhpd->nhd", qc, readout)).reshape(num_nodes, channels)
    return jnp.where(node_mask[:, None], u, 0.0)


#: The pair kernel (:func:`_pair_readout`) is used while a structure's ``S (S + 1) / 2`` atom
#: pairs are at most this many times its ``F`` amplitude features. Measured on the CPU
#: (``benchmarks/rsa_scaling.py --tables 10 --dtype float64``: 4 structures, 6566 paired k-vectors,
#: the default's F = 128): the training step's force-loss gradient is 7x faster with the pair
#: kernel at 10 atoms, 2x at 20, about equal at 30 (ratio 3.6) and 1.4x slower at 40 (6.4).
PAIR_KERNEL_MAX_RATIO = 2.0


def pair_kernel_is_cheaper(num_slots: int, num_features: int) -> bool:
    """Whether :func:`_pair_readout` beats the structure factors for ``num_slots`` atoms per
    structure and ``num_features`` (``F``) amplitude features (static shapes)."""
    return num_slots * (num_slots + 1) / 2 <= PAIR_KERNEL_MAX_RATIO * num_features


def _pair_readout(
    cycles: jnp.ndarray,
    positions: jnp.ndarray,
    member: jnp.ndarray,
    pairs: jnp.ndarray,
    weights: jnp.ndarray,
    paired: bool,
) -> jnp.ndarray:
    """:func:`_lattice_readout` for small structures, through the pair kernel
    ``K_st = sum_m w_m exp(i k_m . (r_s - r_t))``: ``readout_s = sum_t K_st a_t``.

    Same result; cheaper when a structure has few atoms and many k-vectors (a molecule in a large
    box): the structure factors ``(G, M, F)`` are never formed, the largest array is the phases of
    the ``S (S + 1) / 2`` atom pairs, ``(G, Q, M)``, and the sum over k is a matmul. The kernel is
    Hermitian (real weights; the set closed under ``k -> -k`` or paired), so only ``s <= t`` is
    computed.

    Args:
        cycles: (G, M, 3) k-vectors over 2 pi; positions: (G, S, 3); member: (G, S) real atoms;
        pairs: (G, S, H, D/2, D) amplitudes; weights: (G, M, H); paired: each slot stands for
            ``k`` and ``-k`` (the kernel is then ``sum_m 2 w_m cos``).
    Returns:
        (G, S, H, D/2, D) complex.
    """
    slots = positions.shape[1]
    upper, lower = np.triu_indices(slots)
    triangle = np.zeros((slots, slots), np.int32)
    triangle[upper, lower] = np.arange(upper.size)
    triangle[lower, upper] = np.arange(upper.size)
    turns = jnp.einsum("gmi,gqi->gqm", cycles, positions[:, upper] - positions[:, lower])
    if paired:
        kernel = 2.0 * jnp.einsum("gqm,gmh->gqh", cos_turns(turns), weights)[:, triangle]
    else:
        cos, sin = cos_sin_turns(turns)
        real = jnp.einsum("gqm,gmh->gqh", cos, weights)[:, triangle]
        imag = jnp.einsum("gqm,gmh->gqh", sin, weights)[:, triangle]
        # (s, t) with s > t is the conjugate of the computed (t, s)
        imag = jnp.where(
            np.less_equal.outer(np.arange(slots), np.arange(slots))[..., None], imag, -imag
        )
        kernel = jax.lax.complex(real, imag)
    both = member[:, :, None] & member[:, None, :]
    kernel = jnp.where(both[..., None], kernel, 0.0)  # (G, S, S, H)
    return jnp.einsum("gsth,gthpd->gshpd", kernel, pairs)


def _lattice_readout(
    turns: jnp.ndarray,
    member: jnp.ndarray,
    pairs: jnp.ndarray,
    weights: jnp.ndarray,
    paired: bool,
    gather: str,
    scatter: str,
) -> jnp.ndarray:
    """``sum_m w_m e^{i k_m . r_i} S_m`` with ``S_m = sum_j a_j e^{-i k_m . r_j}`` per graph.

    ``turns``: (X, Y, M) phases ``k . r / 2 pi`` in turns (:mod:`rsajax.phases`): every
    node against its own graph's k-vectors, (N, 1, M), or each graph's own slots, (G, S, M);
    ``member`` (X, Y) marks the (node, graph) entries that take part (``turns`` broadcasts
    against it). ``gather`` and ``scatter`` are the two einsums of that layout: amplitudes
    ``pairs`` (leading axes, then ``(H, D/2, D)``, one feature axis ``F`` in the einsums) to
    structure factors ``(G, M, F)``, and those back to the amplitudes' leading axes.
    ``weights``: (G, M, H). (Measured on the CPU: this layout, cosines and sines joined on the k
    axis, is faster than the k axis first; :func:`rsajax.phases.cos_sin_turns` makes both from
    one reduction, and the forces reuse them.)
    """
    lead, (heads, half, width) = pairs.shape[:-3], pairs.shape[-3:]

    def weighted(structure, w):  # (G, M', F) structure factors times (G, M', H) head weights
        split = structure.reshape(structure.shape[:2] + (heads, -1)) * w[..., None]
        return split.reshape(structure.shape)

    if paired:
        # Each slot stands for k and -k: the sine parts cancel and the pair sums to
        # 2 Re[q_i^T (cos_i C + sin_i S)], C/S = sum_j pairs_j cos/sin(k . r_j); real matmuls
        # over half the vectors do the work of complex ones over all of them. Cosines and sines
        # sit side by side on the k axis, and (head, p, d, re/im) one feature axis: both
        # contractions are plain matmuls.
        trig = jnp.concatenate(cos_sin_turns(turns), axis=-1)
        trig = jnp.where(member[..., None], trig, 0.0)  # (X, Y, 2M)
        a = jnp.stack([jnp.real(pairs), jnp.imag(pairs)], axis=-1).reshape(lead + (-1,))
        w = 2.0 * jnp.concatenate([weights, weights], axis=1)  # (G, 2M, H)
        structure = weighted(jnp.einsum(gather, trig, a), w)  # (G, 2M, F)
        read = jnp.einsum(scatter, trig, structure).reshape(lead + (heads, half, width, 2))
        return read[..., 0] + 1j * read[..., 1]
    phases = jax.lax.complex(*cos_sin_turns(turns))
    phases = jnp.where(member[..., None], phases, 0.0)  # (X, Y, M)
    a = pairs.reshape(lead + (-1,))
    structure = weighted(jnp.einsum(gather, jnp.conj(phases), a), weights)
    return jnp.einsum(scatter, phases, structure).reshape(pairs.shape)


def open_boundary_attention(
    q: jnp.ndarray,
    k: jnp.ndarray,
    v: jnp.ndarray,
    positions: jnp.ndarray,
    knorm: jnp.ndarray,
    kweights: jnp.ndarray,
    node_graph: jnp.ndarray,
    open_graph: jnp.ndarray,
    node_mask: jnp.ndarray | None = None,
    num_heads: int = 1,
    node_slots: jnp.ndarray | None = None,
) -> jnp.ndarray:
    """RSA steps 3-5 for open-boundary graphs, with the angular integral done exactly.

    For a k-set that is a continuous, isotropic integral the phase sum becomes a radial kernel,
    ``sum_m w_m e^{i k_m . r} -> phi(r) = sum_m w_m sinc(|k_m| r)``, and the sine (``omega``)
    part of the closed form in RSA.md vanishes, so for head ``h``::

        u_ih = sum_{j in graph(i)} phi_h(|r_i - r_j|) (q_ih . k_jh) v_jh     (self term included)

    where ``q . k`` is the real dot product of the head's ``D`` channels (``Re sum_p q_p
    conj(k_p)``). Cost ``O(N^2 M)`` over the batch's nodes: meant for molecules and clusters.

    Args:
        q, k, v: (N, C) activated queries, keys, values (as for
            :func:`reciprocal_space_attention`).
        positions: (N, 3) Cartesian positions.
        knorm: (G, M) radial nodes ``|k_m|`` of each graph, 1/A.
        kweights: (G, M) or (G, M, H) weights (radial measure, envelope, weighting included),
            0 on masked slots.
        node_graph: (N,) graph of each node.
        open_graph: (G,) bool, the graphs this kernel serves (others get u = 0).
        node_mask: (N,) bool, real nodes.
        num_heads: H.
        node_slots: (G, S) node indices of each graph, -1 on empty slots (as for
            :func:`reciprocal_space_attention`): ``G`` pair blocks of ``S x S`` instead of one
            ``N x N`` block masked to same-graph pairs.
    Returns:
        u: (N, C), zero on padded nodes and on nodes of other graphs.
    """
    num_nodes, channels = q.shape
    width = channels // num_heads
    if node_mask is None:
        node_mask = jnp.ones(num_nodes, dtype=bool)
    weights = kweights if kweights.ndim == 3 else kweights[..., None]
    weights = jnp.broadcast_to(weights, knorm.shape + (num_heads,))
    active = node_mask & open_graph[node_graph]
    positions, q, k, v = (jnp.asarray(x) for x in (positions, q, k, v))  # traced-slot indexing
    qh, kh = q.reshape(num_nodes, num_heads, width), k.reshape(num_nodes, num_heads, width)
    vh = jnp.where(active[:, None], v, 0.0).reshape(num_nodes, num_heads, width)
    if node_slots is not None:
        # Each graph's own nodes, (G, S) slots: G pair blocks of S x S instead of one N x N.
        slots = jnp.asarray(node_slots)
        filled = (slots >= 0) & open_graph[:, None]
        index = jnp.where(filled, slots, 0)
        pair = filled[:, :, None] & filled[:, None, :]
        blocks = (qh[index], kh[index], jnp.where(filled[..., None, None], vh[index], 0.0))
        u = _pair_sum(positions[index], knorm[:, None, :], weights[:, None], pair, *blocks)
        u = jnp.where(filled[..., None, None], u, 0.0).reshape(-1, channels)
        u = jnp.zeros((num_nodes, channels), u.dtype).at[index.reshape(-1)].add(u)
        return jnp.where(active[:, None], u, 0.0)
    pair = (node_graph[:, None] == node_graph[None, :]) & active[:, None] & active[None, :]
    # one block of all N nodes; each row uses its own graph's radial nodes and weights
    u = _pair_sum(
        positions[None], knorm[node_graph][None], weights[node_graph][None], pair[None],
        qh[None], kh[None], vh[None],
    )[0].reshape(num_nodes, channels)  # fmt: skip
    return jnp.where(active[:, None], u, 0.0)


def _pair_sum(positions, knorm, weights, pair, q, k, v) -> jnp.ndarray:
    """``u_i = sum_j phi(|r_i - r_j|) (q_i . k_j) v_j`` within blocks of nodes.

    Args:
        positions: (B, S, 3); knorm: (B, S or 1, M) radial nodes of row ``i``; weights:
            (B, S or 1, M, H); pair: (B, S, S) bool, the pairs that interact; q, k, v:
            (B, S, H, D).
    Returns:
        (B, S, H, D).
    """
    rows = positions.shape[:2]
    knorm = jnp.broadcast_to(knorm, rows + knorm.shape[2:])
    weights = jnp.broadcast_to(weights, rows + weights.shape[2:])
    diff = positions[:, :, None, :] - positions[:, None, :, :]
    r_sq = jnp.sum(diff * diff, axis=-1)
    positive = r_sq > 0
    r = jnp.sqrt(jnp.where(positive, r_sq, 1.0))  # double where: no NaN gradient at r = 0
    r = jnp.where(positive, r, 0.0)
    kr = knorm[:, :, None, :] * r[..., None]  # (B, S, S, M)
    phi = jnp.einsum("bijm,bimh->bijh", jnp.sinc(kr / jnp.pi), weights)
    phi = jnp.where(pair[..., None], phi, 0.0)
    attention = jnp.einsum("bihd,bjhd->bijh", q, k) * phi
    return jnp.einsum("bijh,bjhd->bihd", attention, v)
