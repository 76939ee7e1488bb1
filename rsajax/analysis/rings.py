"""Shortest-path ring statistics of the Si-O network.

Criterion: Franzblau's shortest-path (SP) rings (D. S. Franzblau, PRB 44, 4925 (1991)), also
called primitive-in-distance or King rings. A closed path is an SP ring when, for every pair of its
vertices, the shortest path through the whole network is no shorter than the shorter way round the
ring. The network is the Si-O bond graph only (bonds: Si-O pairs closer than ``cutoff``); a ring of
n Si atoms has 2n atoms and is reported as size n.

Rings are closed paths in the infinite periodic network: vertices carry their lattice image, so a
path that wraps around the box without closing in space is not a ring, and shortcuts are measured
in the periodic network too. ``matscipy.rings.ring_statistics`` also rejects wrapping paths but
measures shortcuts on the box's quotient graph (atom indices without images), so in a box smaller
than about twice the largest ring it drops rings whose only shortcut runs through an image of one
of their own atoms. The two agree once the box is large enough (tested).

The search is pure Python (breadth-first searches limited to half the largest ring); use
``engine="matscipy"`` in :func:`ring_statistics` for its C implementation on the same graph
(about 10x faster).
"""

from __future__ import annotations

from collections import deque

import numpy as np
import vesin

Vertex = tuple[int, int, int, int]  # (atom, image_a, image_b, image_c)


def silica_bonds(
    positions: np.ndarray,
    cell: np.ndarray,
    species: np.ndarray,
    cutoff: float = 2.1,
    a: int = 14,
    b: int = 8,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Directed a-b and b-a bonds within ``cutoff``: (i, j, shifts) with both directions."""
    species = np.asarray(species)
    nl = vesin.NeighborList(cutoff=float(cutoff), full_list=True)
    i, j, s = nl.compute(
        np.asarray(positions, dtype=np.float64), np.asarray(cell, dtype=np.float64), True, "ijS"
    )
    keep = ((species[i] == a) & (species[j] == b)) | ((species[i] == b) & (species[j] == a))
    return i[keep].astype(np.int64), j[keep].astype(np.int64), s[keep].astype(np.int64)


def _adjacency(n: int, i: np.ndarray, j: np.ndarray, s: np.ndarray) -> list[list[Vertex]]:
    adj: list[list[Vertex]] = [[] for _ in range(n)]
    for a, b, (x, y, z) in zip(i.tolist(), j.tolist(), s.tolist(), strict=True):
        adj[a].append((b, x, y, z))
    return adj


def _bfs(adj: list[list[Vertex]], root: int, depth: int) -> tuple[dict, dict]:
    """Distances and shortest-path parents from ``root`` at image 0, up to ``depth`` bonds."""
    start = (root, 0, 0, 0)
    dist = {start: 0}
    parents: dict[Vertex, list[Vertex]] = {start: []}
    queue = deque([start])
    while queue:
        v = queue.popleft()
        dv = dist[v]
        if dv == depth:
            continue
        for b, x, y, z in adj[v[0]]:
            w = (b, v[1] + x, v[2] + y, v[3] + z)
            dw = dist.get(w)
            if dw is None:
                dist[w] = dv + 1
                parents[w] = [v]
                queue.append(w)
            elif dw == dv + 1:
                parents[w].append(v)
    return dist, parents


def _paths(parents: dict, v: Vertex, memo: dict) -> list[tuple[Vertex, ...]]:
    """All shortest paths root -> v as tuples starting at the root (memoised per root)."""
    if v not in memo:
        memo[v] = (
            [p + (v,) for u in parents[v] for p in _paths(parents, u, memo)]
            if parents[v]
            else [(v,)]
        )
    return memo[v]


def _shift(v: Vertex, ref: Vertex) -> Vertex:
    return (v[0], v[1] - ref[1], v[2] - ref[2], v[3] - ref[3])


class _Searches:
    """Depth-limited BFS (distances, parents) from each atom at image 0, computed once."""

    def __init__(self, adj: list[list[Vertex]], depth: int):
        self.adj, self.depth, self.cache = adj, depth, {}

    def bfs(self, atom: int) -> tuple[dict, dict]:
        """Distances and parents from ``atom``; only the distances stay cached."""
        dist, parents = _bfs(self.adj, atom, self.depth)
        self.cache[atom] = dist
        return dist, parents

    def __call__(self, u: Vertex, v: Vertex) -> int:
        """Graph distance u -> v, or depth + 1 if it is larger than depth."""
        if u[0] not in self.cache:
            self.bfs(u[0])
        return self.cache[u[0]].get(_shift(v, u), self.depth + 1)


def _is_sp_ring(ring: tuple[Vertex, ...], distance: _Searches) -> bool:
    n = len(ring)
    for a in range(1, n):
        for b in range(a + 1, n):
            k = b - a
            if distance(ring[a], ring[b]) < min(k, n - k):
                return False
    return True


def _canonical(ring: tuple[Vertex, ...]) -> tuple[Vertex, ...]:
    """Same key for a ring in either direction (root first, root at image 0)."""
    fwd = ring
    bwd = (ring[0],) + tuple(reversed(ring[1:]))
    return min(fwd, bwd)


def sp_rings(n_atoms: int, bonds: tuple[np.ndarray, ...], max_size: int) -> list[tuple[int, ...]]:
    """All SP rings with at most ``max_size`` vertices, each as a tuple of atom indices.

    Args:
        n_atoms: number of atoms N.
        bonds: (i, j, shifts) directed bonds (both directions) with integer lattice shifts.
        max_size: largest ring, in vertices (atoms).
    """
    adj = _adjacency(n_atoms, *bonds)
    half = max_size // 2
    # ring distances are at most half, so searches to depth half decide every shortcut
    searches = _Searches(adj, half)
    found: list[tuple[int, ...]] = []
    # a ring is reported from its lowest atom index, so its other atoms have higher indices:
    # going down from the highest root, their searches are already cached for the SP check
    for root in reversed(range(n_atoms)):
        dist, parents = searches.bfs(root)
        memo: dict = {}
        seen = set()
        for v, dv in dist.items():
            if dv == 0:
                continue
            candidates = []
            # even ring 2*dv: two shortest paths meeting at v
            if 2 * dv <= max_size and len(parents[v]) > 1:
                paths = _paths(parents, v, memo)
                for x in range(len(paths)):
                    for y in range(x + 1, len(paths)):
                        candidates.append(paths[x] + tuple(reversed(paths[y][1:-1])))
            # odd ring 2*dv+1: shortest paths to v and to a neighbour w at the same depth
            if 2 * dv + 1 <= max_size:
                for b, x, y, z in adj[v[0]]:
                    w = (b, v[1] + x, v[2] + y, v[3] + z)
                    if dist.get(w) == dv and w > v:
                        for p in _paths(parents, v, memo):
                            for q in _paths(parents, w, memo):
                                candidates.append(p + tuple(reversed(q[1:])))
            for ring in candidates:
                # rings are reported once, from their lowest atom index; paths must not touch
                if min(u[0] for u in ring) != root or len(set(ring)) != len(ring):
                    continue
                key = _canonical(ring)
                if key in seen or not _is_sp_ring(ring, searches):
                    continue
                seen.add(key)
                found.append(tuple(u[0] for u in ring))
    return found


def ring_statistics(
    positions: np.ndarray,
    cell: np.ndarray,
    species: np.ndarray,
    cutoff: float = 2.1,
    max_si: int = 10,
    engine: str = "python",
) -> np.ndarray:
    """Number of SP rings by size in Si atoms, ``counts[n]`` for n = 0..max_si, of one frame.

    Args:
        positions: (N, 3), A. cell: (3, 3) rows = lattice vectors. species: (N,) atomic numbers.
        cutoff: Si-O bond cutoff, A.
        max_si: largest ring searched, in Si atoms (2 * max_si atoms).
        engine: "python" (this module) or "matscipy" (``matscipy.rings.ring_statistics`` on the
            Si-O-only graph via a per-pair cutoff).
    """
    counts = np.zeros(max_si + 1, dtype=np.int64)
    if engine == "python":
        bonds = silica_bonds(positions, cell, species, cutoff)
        for ring in sp_rings(len(positions), bonds, 2 * max_si):
            if len(ring) % 2 == 0:  # Si-O alternate, so odd closed paths do not occur
                counts[len(ring) // 2] += 1
        return counts
    if engine == "matscipy":
        import ase
        from matscipy.rings import ring_statistics as ms_rings

        atoms = ase.Atoms(numbers=species, positions=positions, cell=cell, pbc=True)
        stats = np.asarray(ms_rings(atoms, {(14, 8): cutoff}, maxlength=2 * max_si + 1))
        even = stats[::2][: max_si + 1]
        counts[: len(even)] = even
        return counts
    raise ValueError(f"unknown ring engine {engine!r}; use 'python' or 'matscipy'")


def ring_fractions(counts: np.ndarray) -> np.ndarray:
    """Counts normalised to fractions (sum 1); zeros if there are no rings."""
    counts = np.asarray(counts, dtype=np.float64)
    total = counts.sum()
    return counts / total if total > 0 else counts
