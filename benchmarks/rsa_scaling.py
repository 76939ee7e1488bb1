"""Time and peak memory of reciprocal-space attention vs system size at silica density.

Prints three tables:

1. The RSA block alone (W_lin, W_qkv, attention; ``ewald`` weights) at a *fixed* ``k_cut``:
   forward and forward+gradient (energy + forces of a scalar test energy ``sum u``). The number of
   lattice vectors grows with the volume (``M ~ V k_cut^3 / (6 pi^2)``), so the cost per atom grows
   like ``M``: a lattice sum at fixed resolution is ``O(N M) = O(N^2)``.
2. The same block at a *fixed number* of k-vectors (the shells with ``|n|^2 <= 3``, ``M = 26``,
   i.e. ``k_cut ~ 1/L`` like the reference's six vectors): time per atom is flat.
3. The reference's materialised computation (per-atom ``(M, N, C, C)`` outer products, gathered
   back per atom) at the same k-sets as table 1, where it fits in memory.

Then, for the whole model (``--tables 3 4``): RSA-MACE energy+forces (the ``default`` preset) vs
N next to SR-MACE on the same random silica boxes, and the overhead of RSA-MACE over SR-MACE at 648
atoms for the presets and single-change variants of the default (the measurement that chose it).

5. (``--tables 5``) The kernel alone, energy + forces of ``sum u``, evaluated on a mesh
   (``rsajax.nn.rsa.mesh``: B-spline spreading, FFT, interpolation) next to the direct kernel at
   the same fixed ``k_cut``: time per atom of the mesh should stay flat; the direct one grows like
   ``M``. Prints the max/min ratio of the mesh's us/atom, the crossover size and the force error.

6. (``--tables 6``) The RSA block (``RSABlock``: W_lin, W_qkv, weights, attention) alone,
   energy + forces of ``sum u``, with ``evaluation="mesh"`` (its k-set and grid from
   ``make_kset_fn``, as in the model) next to ``evaluation="direct"``.
7. (``--tables 7``) RSA-MACE energy+forces with ``RSAConfig.preset("default", evaluation="mesh")``
   vs N next to SR-MACE and the direct default, with the max/min ratio of us/atom.

8. (``--tables 8``) Batches of ``B`` periodic boxes (training's case): RSA-MACE energy+forces with
   each graph's own node slots (``KSet.node_slots``) against the whole batch masked against every
   graph, next to SR-MACE.

9. (``--tables 9``) The plane-wave phases of the direct kernel at ``--phase-atoms`` atoms and the
   default split (``k . r`` for half of the k-set): ``jnp.cos`` + ``jnp.sin`` of the angle
   against :func:`rsajax.phases.cos_turns` of the phase in turns (what the kernel uses), with the
   largest difference.

10. (``--tables 10``) Small structures with many k-vectors (molecules in large boxes): the
   direct kernel's read-out through the structure factors (``(G, M, F)`` arrays) against the pair
   kernel ``K_st = sum_m w_m cos(k . r_st)`` (``rsajax.nn.rsa.kernel._pair_readout``), for
   ``--pair-graphs`` structures of ``S`` atoms (``--pair-atoms``) and ``--pair-k`` paired
   k-vectors each, the default's ``F = 128`` features: the value, its gradient, and the parameter
   gradient of a force loss (training), with the kernel's choice (``pair_kernel_is_cheaper``).

Table 4 also lists the default preset evaluated on the mesh (``mesh``, ``mesh o4``: order 4).

Peak memory is XLA's temporary buffer size for the compiled call (``memory_analysis``), plus
arguments and outputs. Random positions: the kernel's cost does not depend on the structure.

Usage: python benchmarks/rsa_scaling.py [--sizes 192 648 ...] [--k-cut 0.8] [--channels 32]
"""

from __future__ import annotations

import argparse
import time
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np

from rsajax.data import atoms_to_graph, random_silica_box
from rsajax.lattice import reciprocal_vectors
from rsajax.nn.model import MACEConfig, init_model
from rsajax.nn.rsa import RSABlock, RSAConfig, make_kset_fn
from rsajax.nn.rsa.kernel import reciprocal_space_attention
from rsajax.nn.rsa.kset import KSet, integer_kset, kspace_geometry
from rsajax.nn.rsa.kset_fn import choose_evaluation, direct_work, make_mesh_kset_fn, mesh_work
from rsajax.nn.rsa.weights import fixed_kweights
from rsajax.potential import energy_fn_from_model, make_potential

#: atoms per A^3 of silica glass at 2.20 g/cm^3 (SiO2: 60.08 g/mol per 3 atoms).
SILICA_NUMBER_DENSITY = 2.20 / 60.08 * 6.02214076e23 * 1e-24 * 3


def box(num_atoms: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    length = (num_atoms / SILICA_NUMBER_DENSITY) ** (1 / 3)
    positions = np.random.default_rng(seed).uniform(0, length, (num_atoms, 3))
    return positions, np.eye(3) * length


def single_kset(n: np.ndarray, mask: np.ndarray, k_cut: float) -> KSet:
    return KSet(
        n=n[None],
        nodes=np.zeros((1,) + n.shape),
        node_weights=np.zeros((1, len(mask))),
        mask=mask[None],
        periodic=np.array([True]),
        k_cut=k_cut,
    )


def timed(fn, args, repeats: int) -> tuple[float, float]:
    """(best seconds of ``repeats`` calls after compilation, peak bytes of the compiled call)."""
    compiled = jax.jit(fn).lower(*args).compile()
    memory = compiled.memory_analysis()
    peak = memory.temp_size_in_bytes + memory.argument_size_in_bytes + memory.output_size_in_bytes
    jax.block_until_ready(compiled(*args))
    best = np.inf
    for _ in range(repeats):
        start = time.perf_counter()
        jax.block_until_ready(compiled(*args))
        best = min(best, time.perf_counter() - start)
    return best, peak


def materialised_attention(q, k, v, positions, kvectors, weights):
    """The reference's algorithm for one structure: (M, N, C, C) outer products, twice."""

    def rotate(x):  # (N, C) -> (M, N, C), real parts then imaginary parts as in the reference
        theta = (positions @ kvectors.T).T[..., None]
        a, b = x[None, :, 0::2], x[None, :, 1::2]
        return jnp.concatenate([a * jnp.cos(theta) - b * jnp.sin(theta),
                                a * jnp.sin(theta) + b * jnp.cos(theta)], axis=-1)  # fmt: skip

    q_rot, k_rot = rotate(q), rotate(k)
    kv_node = k_rot[..., :, None] * v[None, :, None, :]  # (M, N, C, C)
    kv_graph = jnp.sum(kv_node, axis=1, keepdims=True)  # one graph: the segment sum
    kv_node = jnp.broadcast_to(kv_graph, kv_node.shape)  # gathered back per atom, as reference
    beta = jnp.sum(q_rot[..., :, None] * kv_node, axis=-2)  # (M, N, C)
    return jnp.einsum("m,mnc->nc", weights, beta)


def block_functions(channels: int, num_atoms: int, kset: KSet, dtype, evaluation="direct"):
    block = RSABlock(channels, weighting="ewald", sigma=2.0, evaluation=evaluation)
    positions, cell = box(num_atoms)
    scalars = np.random.default_rng(1).normal(size=(num_atoms, channels)).astype(dtype)
    node_graph, node_mask = np.zeros(num_atoms, np.int32), np.ones(num_atoms, bool)
    cells = jnp.asarray(cell[None], dtype)
    params = block.init(
        jax.random.PRNGKey(0), scalars, positions.astype(dtype), cells, kset, node_graph, node_mask
    )

    def forward(params, positions):
        return block.apply(params, scalars, positions, cells, kset, node_graph, node_mask)

    def energy_and_forces(params, positions):
        return jax.value_and_grad(lambda p: jnp.sum(forward(params, p)))(positions)

    return forward, energy_and_forces, params, positions.astype(dtype)


def run_table(title, sizes, channels, kset_for, dtype, repeats, with_materialised=False,
              materialised_limit_gb=3.0):  # fmt: skip
    print(f"\n{title}")
    header = f"{'N':>6} {'L/A':>6} {'M':>5} {'fwd ms':>9} {'fwd+grad ms':>12} "
    header += f"{'us/atom':>8} {'peak MB':>8}"
    if with_materialised:
        header += f" | {'mat. fwd ms':>11} {'mat. peak MB':>12} {'rel. |du|':>9}"
    print(header)
    for num_atoms in sizes:
        positions, cell = box(num_atoms)
        kset = kset_for(cell)
        forward, energy_and_forces, params, pos = block_functions(channels, num_atoms, kset, dtype)
        t_fwd, _ = timed(forward, (params, pos), repeats)
        t_grad, peak = timed(energy_and_forces, (params, pos), repeats)
        m = int(kset.mask.sum())
        row = f"{num_atoms:>6} {cell[0, 0]:>6.1f} {m:>5} {1e3 * t_fwd:>9.1f} {1e3 * t_grad:>12.1f} "
        row += f"{1e6 * t_grad / num_atoms:>8.1f} {peak / 2**20:>8.1f}"
        if with_materialised:
            row += " | " + materialised_row(
                channels, num_atoms, kset, cell, dtype, repeats, materialised_limit_gb
            )
        print(row, flush=True)


def timed_cpu(fn, args, repeats: int) -> tuple[float, float, float]:
    """(best wall s, best process CPU s, peak bytes): CPU time is steadier on a shared machine."""
    compiled = jax.jit(fn).lower(*args).compile()
    memory = compiled.memory_analysis()
    peak = memory.temp_size_in_bytes + memory.argument_size_in_bytes + memory.output_size_in_bytes
    jax.block_until_ready(compiled(*args))
    wall = cpu = np.inf
    for _ in range(repeats):
        start, start_cpu = time.perf_counter(), time.process_time()
        jax.block_until_ready(compiled(*args))
        wall = min(wall, time.perf_counter() - start)
        cpu = min(cpu, time.process_time() - start_cpu)
    return wall, cpu, peak


def mesh_table(sizes, k_cut, channels, dtype, repeats, order, oversampling, direct_max) -> None:
    """Table 5: mesh RSA (rsajax.nn.rsa.mesh) vs the direct kernel, energy + forces of sum u."""
    from rsajax.nn.rsa.grid import MeshSpec, mesh_shape
    from rsajax.nn.rsa.mesh import mesh_attention
    from rsajax.nn.rsa.weights import mesh_kweights

    print(f"\n5. RSA kernel energy+forces, mesh (order {order}, oversampling {oversampling}) vs "
          f"direct, fixed k_cut = {k_cut} 1/A, ewald weights")  # fmt: skip
    print("(us/atom: wall time; cpu us/atom: process CPU time, all threads, steadier when shared)")
    print(f"{'N':>6} {'mesh K':>12} {'M':>5} | {'mesh ms':>9} {'us/atom':>8} {'cpu us/atom':>11} "
          f"{'peak MB':>8} | {'direct ms':>9} {'us/atom':>8} {'cpu us/atom':>11} {'peak MB':>8} | "
          f"{'rel |dF|':>8}")  # fmt: skip
    per_atom, per_atom_cpu, crossover, crossover_cpu = {}, {}, None, None
    for num_atoms in sizes:
        positions, cell = box(num_atoms)
        rng = np.random.default_rng(2)
        q, k, v = (jnp.asarray(x, dtype) for x in rng.normal(size=(3, num_atoms, channels)))
        q = q / np.sqrt(channels)
        cells, node_graph = jnp.asarray(cell[None], dtype), jnp.zeros(num_atoms, jnp.int32)
        mesh = MeshSpec(mesh_shape(cell, k_cut, oversampling), order, k_cut)

        def mesh_energy(pos, mesh=mesh, q=q, k=k, v=v, cells=cells, node_graph=node_graph):
            weights = mesh_kweights(mesh, cells, np.array([True]), "ewald", sigma=2.0)
            return jnp.sum(mesh_attention(q, k, v, pos, cells, weights, node_graph, 1, mesh))

        kset = single_kset(*integer_kset(cell, k_cut, margin=0.1), k_cut)

        def direct_energy(pos, kset=kset, q=q, k=k, v=v, cells=cells, node_graph=node_graph):
            kvectors, measure = kspace_geometry(kset, cells)
            weights = fixed_kweights(kset, kvectors, measure, "ewald", sigma=2.0)
            u = reciprocal_space_attention(q, k, v, pos, kvectors, weights, kset.mask,
                                           node_graph, 1)  # fmt: skip
            return jnp.sum(u)

        pos = jnp.asarray(positions, dtype)
        mesh_fn = jax.value_and_grad(mesh_energy)
        t_mesh, cpu_mesh, peak_mesh = timed_cpu(mesh_fn, (pos,), repeats)
        per_atom[num_atoms] = 1e6 * t_mesh / num_atoms
        per_atom_cpu[num_atoms] = 1e6 * cpu_mesh / num_atoms
        row = f"{num_atoms:>6} {'x'.join(map(str, mesh.shape)):>12} {kset.num_k:>5} | "
        row += f"{1e3 * t_mesh:>9.1f} {per_atom[num_atoms]:>8.1f} {per_atom_cpu[num_atoms]:>11.1f} "
        row += f"{peak_mesh / 2**20:>8.1f} | "
        if num_atoms <= direct_max:
            direct_fn = jax.value_and_grad(direct_energy)
            t_direct, cpu_direct, peak_direct = timed_cpu(direct_fn, (pos,), repeats)
            forces_mesh = jax.jit(mesh_fn)(pos)[1]
            forces_direct = jax.jit(direct_fn)(pos)[1]
            diff = jnp.max(jnp.abs(forces_mesh - forces_direct)) / jnp.max(jnp.abs(forces_direct))
            row += f"{1e3 * t_direct:>9.1f} {1e6 * t_direct / num_atoms:>8.1f} "
            row += f"{1e6 * cpu_direct / num_atoms:>11.1f} "
            row += f"{peak_direct / 2**20:>8.1f} | {float(diff):>8.1e}"
            if crossover is None and t_mesh < t_direct:
                crossover = num_atoms
            if crossover_cpu is None and cpu_mesh < cpu_direct:
                crossover_cpu = num_atoms
        else:
            row += f"{'skipped':>9} {'':>8} {'':>11} {'':>8} |"
        print(row, flush=True)
    for name, values in (("wall", per_atom), ("cpu", per_atom_cpu)):
        ratio = max(values.values()) / min(values.values())
        print(f"mesh {name} us/atom max/min over {min(sizes)}..{max(sizes)} atoms: {ratio:.2f} "
              "(target < 2)")  # fmt: skip
    print(f"crossover (smallest N where the mesh beats direct): wall {crossover or 'not reached'}, "
          f"cpu {crossover_cpu or 'not reached'}")  # fmt: skip


def materialised_row(channels, num_atoms, kset, cell, dtype, repeats, limit_gb):
    """Reference-style cost on the same k-set, and its max deviation from our kernel."""
    m = int(kset.mask.sum())
    need_gb = 2 * m * num_atoms * channels * channels * np.dtype(dtype).itemsize / 2**30
    if need_gb > limit_gb:
        return f"{'skipped':>11} {f'needs {need_gb:.0f} GB':>12} {'':>9}"
    rng = np.random.default_rng(2)
    q, k, v = (jnp.asarray(x, dtype) for x in rng.normal(size=(3, num_atoms, channels)))
    q = q / np.sqrt(channels)
    positions = jnp.asarray(box(num_atoms)[0], dtype)
    kvectors, measure = kspace_geometry(kset, jnp.asarray(cell[None], dtype))
    weights = fixed_kweights(kset, kvectors, measure, "ewald", sigma=2.0)
    t, peak = timed(materialised_attention, (q, k, v, positions, kvectors[0], weights[0]), repeats)
    ours = reciprocal_space_attention(
        q, k, v, positions, kvectors, weights, kset.mask, jnp.zeros(num_atoms, jnp.int32), 1
    )
    theirs = jax.jit(materialised_attention)(q, k, v, positions, kvectors[0], weights[0])
    diff = float(jnp.max(jnp.abs(theirs - ours)) / jnp.max(jnp.abs(ours)))
    return f"{1e3 * t:>11.1f} {peak / 2**20:>12.1f} {diff:>9.1e}"


#: The SR-MACE that RSA-MACE extends in tables 3-4 (a mid-size silica model).
MODEL = dict(r_max=5.0, num_bessel=8, num_polynomial_cutoff=5, max_ell=2, num_channels=32,
             max_L=1, correlation=3, num_interactions=2, MLP_irreps="16x0e",
             radial_MLP=(64, 64, 64), avg_num_neighbors=20.0, atomic_numbers=(8, 14),
             atomic_energies=(-3.0, -5.0))  # fmt: skip
#: Long-range variants compared in table 4 (``default`` with one change each).
VARIANTS = {
    "seed": lambda: RSAConfig.preset("seed"),
    "default": lambda: RSAConfig.preset("default"),
    "default-v0": lambda: RSAConfig.preset("default-v0"),
    "acc=1e-2": lambda: RSAConfig.preset("default", accuracy=1e-2),
    "acc=1e-4": lambda: RSAConfig.preset("default", accuracy=1e-4),
    "1 head": lambda: RSAConfig.preset("default", num_heads=1),
    "C=32": lambda: RSAConfig.preset("default", channels=32),
    "residual": lambda: RSAConfig.preset("default", combine="residual"),
    "ewald": lambda: RSAConfig.preset("default", weighting="ewald"),
    "mesh": lambda: RSAConfig.preset("default", evaluation="mesh"),
    "mesh o4": lambda: RSAConfig.preset("default", evaluation="mesh", mesh_order=4),
}


def model_call(long_range, atoms, dtype, node_slots: bool = True, model: dict = MODEL):
    """(compiled energy+forces call, its arguments, peak bytes, M) of (RSA-)MACE on ``atoms``
    (one structure or a list: one batch); ``node_slots=False`` drops ``KSet.node_slots``;
    ``model``: the MACEConfig fields of the SR-MACE part."""
    config = MACEConfig(**model, dtype=np.dtype(dtype).name, long_range=long_range)
    model, variables = init_model(config)
    # config.long_range is resolved: sigma and k_cut derived from r_max where the preset leaves them
    batch = atoms if isinstance(atoms, list) else [atoms]
    kset_fn = None if long_range is None else make_kset_fn(config.long_range, batch)
    graph = atoms_to_graph(batch, config.r_max, dtype=dtype, kset_fn=kset_fn)
    if graph.kset is not None and not node_slots:
        graph = graph.replace(kset=graph.kset.replace(node_slots=None))
    potential = make_potential(energy_fn_from_model(model), compute_stress=False)
    compiled = jax.jit(potential).lower(variables, graph).compile()
    memory = compiled.memory_analysis()
    peak = memory.temp_size_in_bytes + memory.argument_size_in_bytes + memory.output_size_in_bytes
    jax.block_until_ready(compiled(variables, graph))
    m = 0 if graph.kset is None else int(np.asarray(graph.kset.mask[0]).sum())
    if graph.kset is not None and graph.kset.mesh is not None:
        m = int(np.prod(graph.kset.mesh.shape))  # grid points instead of k-vectors
    return compiled, (variables, graph), peak, m


def interleaved_best(runs, repeats: int, cpu: list | None = None) -> list[float]:
    """Best seconds of each compiled call, timed in alternating rounds (fair on a busy machine);
    the best process CPU seconds are written into ``cpu`` if given."""
    best = [np.inf] * len(runs)
    best_cpu = [np.inf] * len(runs)
    for _ in range(repeats):
        for index, (compiled, args, *_) in enumerate(runs):
            start, start_cpu = time.perf_counter(), time.process_time()
            jax.block_until_ready(compiled(*args))
            best[index] = min(best[index], time.perf_counter() - start)
            best_cpu[index] = min(best_cpu[index], time.process_time() - start_cpu)
    if cpu is not None:
        cpu[:] = best_cpu
    return best


def model_rows(sizes, dtype, repeats, variants, overhead_atoms=648) -> None:
    """Tables 3 and 4: RSA-MACE (default preset) energy+forces vs N, and the overhead over
    SR-MACE at ``overhead_atoms`` for each variant."""
    desc = ", ".join(f"{k}={v}" for k, v in MODEL.items() if k not in ("atomic_energies",))
    print(f"\nSR-MACE: {desc}")
    if sizes:
        print("\n3. RSA-MACE energy+forces, default preset "
              f"({RSAConfig.preset('default')}), random silica boxes")  # fmt: skip
        print(f"{'N':>6} {'L/A':>6} {'M':>5} {'LR ms':>9} {'us/atom':>8} {'peak MB':>8} "
              f"{'SR ms':>9} {'SR peak MB':>10} {'overhead':>9}")  # fmt: skip
    for n in sizes:  # empty unless table 3 is asked for
        atoms = random_silica_box(n)
        lr = model_call(RSAConfig.preset("default"), atoms, dtype)
        sr = model_call(None, atoms, dtype)
        t_lr, t_sr = interleaved_best([lr, sr], repeats)
        (peak_lr, m), peak_sr = lr[2:], sr[2]
        print(f"{n:>6} {atoms.cell[0, 0]:>6.1f} {m:>5} {1e3 * t_lr:>9.1f} "
              f"{1e6 * t_lr / n:>8.1f} {peak_lr / 2**20:>8.1f} {1e3 * t_sr:>9.1f} "
              f"{peak_sr / 2**20:>10.1f} {100 * (t_lr / t_sr - 1):>8.1f}%", flush=True)  # fmt: skip
    atoms = random_silica_box(overhead_atoms)
    print(f"\n4. RSA-MACE over SR-MACE at {overhead_atoms} atoms (L = {atoms.cell[0, 0]:.1f} A), "
          "energy+forces")  # fmt: skip
    runs = [model_call(None, atoms, dtype)]
    runs += [model_call(VARIANTS[name](), atoms, dtype) for name in variants]
    times = interleaved_best(runs, repeats)
    print(f"{'variant':>10} {'M':>5} {'ms':>9} {'peak MB':>8} {'overhead':>9}")
    for name, t, (_, _, peak, m) in zip(["SR-MACE", *variants], times, runs, strict=True):
        overhead = f"{100 * (t / times[0] - 1):>8.1f}%" if name != "SR-MACE" else ""
        print(f"{name:>10} {m:>5} {1e3 * t:>9.1f} {peak / 2**20:>8.1f} {overhead:>9}")


def batch_table(batch_sizes, num_atoms: int, dtype, repeats: int) -> None:
    """Table 8: a batch of B periodic boxes (training's case), RSA-MACE energy+forces with each
    graph's own node slots (``KSet.node_slots``, the default from ``make_kset_fn``) against the
    whole batch masked against every graph (``O(N G M)``), next to SR-MACE."""
    print(f"\n8. batches of B random silica boxes of {num_atoms} atoms, energy+forces: node slots "
          "vs the masked batch")  # fmt: skip
    print(f"{'B':>4} {'M':>6} {'slots ms':>9} {'masked ms':>10} {'masked/slots':>13} "
          f"{'SR ms':>8} {'slots/SR':>9}")  # fmt: skip
    for b in batch_sizes:
        atoms = [random_silica_box(num_atoms, seed=s) for s in range(b)]
        default = RSAConfig.preset("default")
        runs = [
            model_call(default, atoms, dtype),
            model_call(default, atoms, dtype, node_slots=False),
            model_call(None, atoms, dtype),
        ]
        t_slots, t_masked, t_sr = interleaved_best(runs, repeats)
        print(f"{b:>4} {runs[0][3]:>6} {1e3 * t_slots:>9.1f} {1e3 * t_masked:>10.1f} "
              f"{t_masked / t_slots:>13.2f} {1e3 * t_sr:>8.1f} {t_slots / t_sr:>9.2f}",
              flush=True)  # fmt: skip


def ratio_line(what: str, per_atom: dict) -> str:
    ratio = max(per_atom.values()) / min(per_atom.values())
    sizes = sorted(per_atom)
    return f"{what} us/atom max/min over {sizes[0]}..{sizes[-1]} atoms: {ratio:.2f} (target < 2)"


def fft_seconds(shape, channels: int, dtype, repeats: int) -> float:
    """Best time of the mesh's FFT round trip (fftn, weights, ifftn) and its gradient on a
    grid of ``channels^2 / 2`` complex amplitudes (one head), as in ``mesh_attention``."""
    complex_dtype = jnp.result_type(dtype, jnp.complex64)
    grid = jnp.ones((1, *shape, channels * channels // 2), complex_dtype)
    weights = jnp.ones((1, *shape, 1), dtype)

    def round_trip(grid):
        field = jnp.fft.ifftn(jnp.fft.fftn(grid, axes=(1, 2, 3)) * weights, axes=(1, 2, 3))
        return jnp.sum(jnp.abs(field) ** 2)

    return timed(jax.value_and_grad(round_trip), (grid,), repeats)[0]


def mesh_block_table(sizes, k_cut, channels, dtype, repeats, order, oversampling, direct_max):
    """Table 6: the RSA block, energy + forces of ``sum u``, mesh vs direct evaluation."""
    print(
        f"\n6. RSA block energy+forces, evaluation mesh (order {order}, oversampling "
        f"{oversampling}, grid from make_kset_fn, margin 0.1) vs direct, k_cut = {k_cut} 1/A"
    )
    print("(FFT ms: the forward and inverse FFTs of the grid with their gradients alone, the part "
          "that pruning to |k| <= k_cut could shrink)")  # fmt: skip
    print("(us/atom: wall time; cpu: process CPU time per atom, all threads, steadier when shared)")
    print(f"{'N':>6} {'grid':>10} {'M':>5} | {'mesh ms':>9} {'us/atom':>8} {'cpu':>7} "
          f"{'peak MB':>8} {'FFT ms':>7} | {'direct ms':>9} {'us/atom':>8} {'cpu':>7} "
          f"{'peak MB':>8}")  # fmt: skip
    per_atom, per_atom_cpu = {}, {}
    for num_atoms in sizes:
        _, cell = box(num_atoms)
        graph = SimpleNamespace(
            cell=cell[None], pbc=np.ones((1, 3), bool), graph_mask=np.ones(1, bool),
            n_node=np.array([num_atoms]),
        )  # fmt: skip
        kset_fn = make_mesh_kset_fn(cell[None], graph.pbc, k_cut, order=order,
                                    oversampling=oversampling)  # fmt: skip
        _, mesh_fn, params, pos = block_functions(
            channels, num_atoms, kset_fn(graph), dtype, evaluation="mesh"
        )
        t_mesh, cpu_mesh, peak_mesh = timed_cpu(mesh_fn, (params, pos), repeats)
        per_atom[num_atoms] = 1e6 * t_mesh / num_atoms
        per_atom_cpu[num_atoms] = 1e6 * cpu_mesh / num_atoms
        direct = single_kset(*integer_kset(cell, k_cut, margin=0.1), k_cut)
        row = f"{num_atoms:>6} {'x'.join(map(str, kset_fn.mesh.shape)):>10} {direct.num_k:>5} | "
        row += f"{1e3 * t_mesh:>9.1f} {per_atom[num_atoms]:>8.1f} {per_atom_cpu[num_atoms]:>7.1f} "
        row += f"{peak_mesh / 2**20:>8.1f} "
        row += f"{1e3 * fft_seconds(kset_fn.mesh.shape, channels, dtype, repeats):>7.1f} | "
        if num_atoms <= direct_max:
            _, direct_fn, params, pos = block_functions(channels, num_atoms, direct, dtype)
            t_direct, cpu_direct, peak_direct = timed_cpu(direct_fn, (params, pos), repeats)
            row += f"{1e3 * t_direct:>9.1f} {1e6 * t_direct / num_atoms:>8.1f} "
            row += f"{1e6 * cpu_direct / num_atoms:>7.1f} "
            row += f"{peak_direct / 2**20:>8.1f}"
        else:
            row += f"{'skipped':>9}"
        print(row, flush=True)
    print(ratio_line("mesh block wall", per_atom))
    print(ratio_line("mesh block cpu", per_atom_cpu))


def unit_cost_ratio(num_atoms: int, runs, times, mesh_config) -> float:
    """The mesh's RSA time per :func:`mesh_work` unit over the direct kernel's per
    :func:`direct_work` unit (runs: mesh, SR, direct; RSA time = the call's time minus SR's)."""
    grid = runs[0][1][1].kset.mesh.shape
    mesh = (times[0] - times[1]) / mesh_work(num_atoms, grid, mesh_config.mesh_order)
    direct = (times[2] - times[1]) / direct_work(num_atoms, runs[2][3])
    return mesh / direct


def mesh_model_table(sizes, dtype, repeats, direct_max) -> None:
    """Table 7: RSA-MACE (default preset, mesh) energy+forces vs N, with SR-MACE and direct."""
    mesh_config = RSAConfig.preset("default", evaluation="mesh")
    print(f"\n7. RSA-MACE energy+forces, default preset evaluated on the mesh (order "
          f"{mesh_config.mesh_order}, oversampling {mesh_config.mesh_oversampling}), random "
          "silica boxes; SR-MACE and the direct default alongside")  # fmt: skip
    print("(cpu: process CPU us/atom, all threads, steadier when shared)")
    print(
        f"{'N':>6} {'L/A':>6} {'grid':>6} | {'mesh ms':>9} {'us/atom':>8} {'cpu':>7} "
        f"{'peak MB':>8} {'overhead':>8} | {'SR ms':>9} {'us/atom':>8} {'cpu':>7} | "
        f"{'direct ms':>9} {'overhead':>8} {'M':>7} {'unit cost':>9} {'auto':>7}"
    )
    print("(unit cost: the mesh's RSA seconds per mesh_work unit over the direct kernel's per "
          "direct_work unit, RSA = RSA-MACE minus SR-MACE: what kset_fn.MESH_WORK_COST holds; "
          "auto: what evaluation='auto' picks for this box)")  # fmt: skip
    per_atom, per_atom_sr, cpu_mesh, cpu_sr = {}, {}, {}, {}
    for n in sizes:
        atoms = random_silica_box(n)
        runs = [model_call(mesh_config, atoms, dtype), model_call(None, atoms, dtype)]
        if n <= direct_max:
            runs.append(model_call(RSAConfig.preset("default", evaluation="direct"), atoms, dtype))
        cpu: list = []
        times = interleaved_best(runs, repeats, cpu)
        per_atom[n], per_atom_sr[n] = 1e6 * times[0] / n, 1e6 * times[1] / n
        cpu_mesh[n], cpu_sr[n] = 1e6 * cpu[0] / n, 1e6 * cpu[1] / n
        row = f"{n:>6} {atoms.cell[0, 0]:>6.1f} {runs[0][3]:>6} | {1e3 * times[0]:>9.1f} "
        row += f"{per_atom[n]:>8.1f} {cpu_mesh[n]:>7.1f} {runs[0][2] / 2**20:>8.1f} "
        row += f"{100 * (times[0] / times[1] - 1):>7.1f}% | {1e3 * times[1]:>9.1f} "
        row += f"{per_atom_sr[n]:>8.1f} {cpu_sr[n]:>7.1f} | "
        if n <= direct_max:
            row += f"{1e3 * times[2]:>9.1f} {100 * (times[2] / times[1] - 1):>7.1f}% "
            row += f"{runs[2][3]:>7} {unit_cost_ratio(n, runs, times, mesh_config):>9.1f}"
        else:
            row += f"{'skipped':>9}"
        auto = RSAConfig.preset("default").resolved(MODEL["r_max"])
        row += f" {choose_evaluation(auto, atoms.cell.array[None], np.ones((1, 3), bool), n):>7}"
        print(row, flush=True)
        del runs
    print(ratio_line("RSA-MACE (mesh) wall", per_atom))
    print(ratio_line("RSA-MACE (mesh) cpu", cpu_mesh))
    print(ratio_line("SR-MACE wall", per_atom_sr))
    print(ratio_line("SR-MACE cpu", cpu_sr))


def phase_table(num_atoms: int, dtype, repeats: int) -> None:
    """Table 9: cosines and sines of the direct kernel's (N, M/2) phase matrix, two ways."""
    from rsajax.phases import cos_turns

    atoms = random_silica_box(num_atoms)
    config = RSAConfig.preset("default").resolved(MODEL["r_max"])
    n, mask = integer_kset(atoms.cell.array, config.k_cut, margin=0.0)
    half = n[mask][: int(mask.sum()) // 2]
    kvectors = half @ reciprocal_vectors(atoms.cell.array)
    angle = jnp.asarray(atoms.positions @ kvectors.T, dtype)
    turns = jnp.asarray(atoms.positions @ (kvectors.T / (2 * np.pi)), dtype)
    calls = [
        (jax.jit(lambda a: jnp.concatenate([jnp.cos(a), jnp.sin(a)], -1)), angle),
        (jax.jit(lambda t: jnp.concatenate([cos_turns(t), cos_turns(t - 0.25)], -1)), turns),
    ]
    runs = [(f.lower(x).compile(), (x,)) for f, x in calls]
    values = [np.asarray(jax.block_until_ready(c(*a)), np.float64) for c, a in runs]
    times = interleaved_best(runs, repeats)
    print(f"\n9. cos + sin of the direct kernel's phases, {num_atoms} atoms, default split "
          f"(k_cut {config.k_cut:.2f} 1/A), an ({num_atoms}, {len(half)}) matrix, "
          f"{np.dtype(dtype).name}")  # fmt: skip
    print(f"{'method':>22} {'ms':>8} {'ns/element':>11} {'speed-up':>9}")
    for name, t in zip(["jnp.cos + jnp.sin", "rsajax.phases"], times, strict=True):
        print(f"{name:>22} {1e3 * t:>8.2f} {1e9 * t / angle.size:>11.2f} {times[0] / t:>8.1f}x")
    print(f"largest difference: {np.max(np.abs(values[0] - values[1])):.2e}")


def pair_table(atoms_per_structure, num_graphs: int, num_k: int, dtype, repeats: int) -> None:
    """Table 10: structure factors vs the pair kernel for small structures, many k-vectors."""
    from rsajax.nn.rsa.kernel import _lattice_readout, _pair_readout, pair_kernel_is_cheaper

    heads, half, width = 2, 4, 8  # the default: C = 16, 2 heads, F = 2 * 2 * 4 * 8 = 128
    features = 2 * heads * half * width
    rng = np.random.default_rng(0)
    cycles = jnp.asarray(rng.normal(size=(num_graphs, num_k, 3)), dtype)
    weights = jnp.asarray(rng.random((num_graphs, num_k, heads)), dtype)
    print(f"\n10. read-out of {num_graphs} structures x {num_k} paired k-vectors, F = {features}, "
          f"{np.dtype(dtype).name}: structure factors (sf) vs pair kernel, ms")  # fmt: skip
    print(f"{'atoms':>6} {'pairs/F':>8} " + " ".join(
        f"{w + ' ' + m:>11}" for w in ("value", "grad", "force") for m in ("sf", "pair")
    ) + f" {'sf/pair (force)':>16} {'kernel picks':>13}")  # fmt: skip
    for slots in atoms_per_structure:
        positions = jnp.asarray(3.0 * rng.normal(size=(num_graphs, slots, 3)), dtype)
        amplitudes = rng.normal(size=(2, num_graphs, slots, heads, half, width))
        pairs = jnp.asarray(amplitudes[0] + 1j * amplitudes[1])

        def structure_factors(positions, pairs, weights):
            member = jnp.ones(positions.shape[:2], bool)
            turns = jnp.einsum("gmi,gsi->gsm", cycles, positions)
            layout = ("gsm,gsf->gmf", "gsm,gmf->gsf")
            return _lattice_readout(turns, member, pairs, weights, True, *layout)

        def pair_kernel(positions, pairs, weights):
            member = jnp.ones(positions.shape[:2], bool)
            return _pair_readout(cycles, positions, member, pairs, weights, True)

        calls = []
        for readout in (structure_factors, pair_kernel):

            def energy(positions, pairs, weights, readout=readout):
                return jnp.sum(jnp.abs(readout(positions, pairs, weights)) ** 2)

            def force_loss(weights, positions, pairs, energy=energy):
                return jnp.sum(jax.grad(energy)(positions, pairs, weights) ** 2)

            calls += [
                (jax.jit(energy), (positions, pairs, weights)),
                (jax.jit(jax.grad(energy, argnums=(0, 1, 2))), (positions, pairs, weights)),
                (jax.jit(jax.grad(force_loss)), (weights, positions, pairs)),
            ]
        runs = [(f.lower(*a).compile(), a) for f, a in calls]
        for compiled, a in runs:
            jax.block_until_ready(compiled(*a))
        times = interleaved_best(runs, repeats)
        sf, pair = times[:3], times[3:]
        cells = " ".join(
            f"{1e3 * a:>11.1f} {1e3 * b:>11.1f}" for a, b in zip(sf, pair, strict=True)
        )
        pick = "pair" if pair_kernel_is_cheaper(slots, features) else "sf"
        ratio = slots * (slots + 1) / 2 / features
        print(f"{slots:>6} {ratio:>8.2f} {cells} {sf[2] / pair[2]:>15.1f}x {pick:>13}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[192, 648, 1536, 3000, 6000, 12000])
    parser.add_argument("--k-cut", type=float, default=0.8, help="fixed k_cut in 1/A")
    parser.add_argument("--channels", type=int, default=32)
    parser.add_argument("--mesh-order", type=int, default=6, help="table 5: B-spline order")
    parser.add_argument("--mesh-oversampling", type=float, default=2.0, help="table 5")
    parser.add_argument("--mesh-direct-max", type=int, default=12000, help="table 5: largest N "
                        "for which the direct kernel is timed too")  # fmt: skip
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--dtype", default="float32", choices=["float32", "float64"])
    parser.add_argument(
        "--tables",
        type=int,
        nargs="+",
        default=[1, 2, 3, 4],
        help="which tables (3, 4: RSA-MACE energy+forces and its overhead; 5-7: mesh)",
    )
    parser.add_argument("--model-sizes", type=int, nargs="+", default=[192, 648, 1536, 3000])
    parser.add_argument(
        "--mesh-model-sizes",
        type=int,
        nargs="+",
        default=[192, 648, 1536, 3000, 6000, 12000],
        help="table 7",
    )
    parser.add_argument("--model-direct-max", type=int, default=3000, help="table 7: largest N "
                        "for which the direct RSA-MACE is timed too")  # fmt: skip
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4, 16], help="table 8")
    parser.add_argument("--batch-atoms", type=int, default=96, help="table 8: atoms per box")
    parser.add_argument("--phase-atoms", type=int, default=648, help="table 9")
    parser.add_argument("--pair-atoms", type=int, nargs="+", default=[5, 10, 15, 20, 30, 40],
                        help="table 10: atoms per structure")  # fmt: skip
    parser.add_argument("--pair-graphs", type=int, default=4, help="table 10: structures")
    parser.add_argument("--pair-k", type=int, default=6566, help="table 10: paired k-vectors "
                        "(6566: half the default's set in a 30 A cube)")  # fmt: skip
    args = parser.parse_args()
    if args.dtype == "float64":
        jax.config.update("jax_enable_x64", True)
    dtype = np.dtype(args.dtype)
    print(f"device: {jax.devices()[0].device_kind}, C = {args.channels}, 1 head, {args.dtype}")

    def fixed_cut(cell):
        n, mask = integer_kset(cell, args.k_cut, margin=0.1)
        return single_kset(n, mask, args.k_cut)

    def fixed_count(cell):
        k_cut = 2 * np.pi * np.sqrt(3.5) / cell[0, 0]  # |n|^2 <= 3: 26 vectors in a cubic box
        n, mask = integer_kset(cell, k_cut, margin=0.0)
        return single_kset(n, mask, k_cut)

    if 1 in args.tables:
        title = f"1. RSA block, fixed k_cut = {args.k_cut} 1/A (margin 0.1), ewald weights"
        run_table(title, args.sizes, args.channels, fixed_cut, dtype, args.repeats, True)
    if 2 in args.tables:
        title = "2. RSA block, fixed M = 26 (shells |n|^2 <= 3)"
        run_table(title, args.sizes, args.channels, fixed_count, dtype, args.repeats)
    if 5 in args.tables:
        mesh_table(args.sizes, args.k_cut, args.channels, dtype, args.repeats, args.mesh_order,
                   args.mesh_oversampling, args.mesh_direct_max)  # fmt: skip
    if 6 in args.tables:
        mesh_block_table(args.sizes, args.k_cut, args.channels, dtype, args.repeats,
                         args.mesh_order, args.mesh_oversampling, args.mesh_direct_max)  # fmt: skip
    if 7 in args.tables:
        mesh_model_table(args.mesh_model_sizes, dtype, args.repeats, args.model_direct_max)
    if 8 in args.tables:
        batch_table(args.batch_sizes, args.batch_atoms, dtype, args.repeats)
    if 9 in args.tables:
        phase_table(args.phase_atoms, dtype, args.repeats)
    if 10 in args.tables:
        pair_table(args.pair_atoms, args.pair_graphs, args.pair_k, dtype, args.repeats)
    if 3 in args.tables or 4 in args.tables:
        sizes = args.model_sizes if 3 in args.tables else []
        variants = args.variants if 4 in args.tables else []
        model_rows(sizes, dtype, args.repeats, variants)


if __name__ == "__main__":
    main()
