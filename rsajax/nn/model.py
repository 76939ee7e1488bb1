"""MACE and ScaleShiftMACE assembled, with mace-torch hyperparameter names.

``MACE(config).apply(variables, graph) -> (G,) energies``. ``variables`` holds two collections:
``params`` (trainable) and ``constants`` (symmetric-contraction coupling tensors, never trained).
Edge vectors are computed inside from ``graph.positions`` and ``graph.cell`` so autodiff gives
forces and stress (see :mod:`rsajax.potential`).
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import flax.linen as nn
import flax.serialization
import jax
import jax.numpy as jnp
import numpy as np

from rsajax.documented import documented, key
from rsajax.errors import InputError
from rsajax.graph import Graph, edge_vectors, pad_graph, safe_norm
from rsajax.nn import mace
from rsajax.nn.radial import bessel_basis, polynomial_cutoff, silu_constant
from rsajax.nn.rsa import as_rsa_config, init_kset, long_range_combine

CONFIG_FILE = "config.json"
PARAMS_FILE = "params.msgpack"
FORMAT_NAME = "rsajax-mace"
FORMAT_VERSION = 1
#: RSAConfig fields added after format version 1, with the value a file saved without them meant.
RSA_FIELDS_ADDED_LATER = {"neutral": False, "net_charge": False}
INTERACTIONS = ("RealAgnosticResidualInteractionBlock", "RealAgnosticInteractionBlock")


@documented(frozen=True)
class MACEArchitecture:
    """MACE architecture hyperparameters (mace-torch names), each declared here once with its
    one default; ``rsajax train`` reads them from its config's ``model`` section. What the
    training data says (E0s, avg_num_neighbors, scale, shift) is not here: it is a
    :class:`DatasetInfo`, and a :class:`MACEConfig` holds both.

    ``hidden_irreps``, when given, sets ``num_channels`` and ``max_L``; when not, it is
    ``num_channels`` channels of each degree 0..``max_L``. ``model_type`` "ScaleShiftMACE"
    applies ``scale * E_node + shift`` to the summed readouts before adding E0s; "MACE" adds
    readouts to E0s as they are. ``silu_normalization`` records which SiLU constant the model
    was built with ("torch": 1.6791767923989418 as in e3nn/mace-torch; "e3nn-jax":
    1.6765620560798837). ``long_range``: None (short-range MACE) or an
    :class:`rsajax.nn.rsa.RSAConfig` (a dict or preset name is converted): RSA-MACE, see
    :mod:`rsajax.nn.rsa`."""

    r_max: float = key(5.0, "cutoff radius, A")
    num_bessel: int = key(8, "radial Bessel functions")
    num_polynomial_cutoff: int = key(5, "power p of the polynomial cutoff envelope")
    max_ell: int = key(3, "highest spherical-harmonic degree of edge features")
    hidden_irreps: str | None = key(
        None, "node features between interactions, e.g. 32x0e+32x1o (sets num_channels, max_L)"
    )
    num_channels: int | None = key(32, "channels per degree when hidden_irreps is not given")
    max_L: int | None = key(1, "highest degree of node features when hidden_irreps is not given")
    correlation: int | tuple[int, ...] = key(
        3, "body order of the symmetric contraction minus one (or one value per interaction)"
    )
    num_interactions: int = key(2, "message-passing layers")
    MLP_irreps: str = key("16x0e", "hidden irreps of the last, non-linear readout")
    radial_MLP: tuple[int, ...] = key((64, 64, 64), "hidden widths of the radial MLP")
    model_type: str = key("ScaleShiftMACE", "ScaleShiftMACE or MACE")
    interaction_first: str = key("RealAgnosticResidualInteractionBlock", "first interaction block")
    interaction: str = key("RealAgnosticResidualInteractionBlock", "later interaction blocks")
    apply_cutoff: bool = key(True, "multiply the radial features by the cutoff envelope")
    silu_normalization: str = key("torch", "SiLU normalisation constant: torch or e3nn-jax")
    long_range: Any = key(None, "long-range (RSA) options: a preset name, a mapping or null")
    remat: bool = key(False, "recompute interactions in the backward pass (less memory)")

    def __post_init__(self):
        if self.hidden_irreps is None:
            if self.num_channels is None or self.max_L is None:
                raise ValueError("MACE needs hidden_irreps or num_channels and max_L")
            irreps = "+".join(
                f"{self.num_channels}x{l}{'e' if l % 2 == 0 else 'o'}"
                for l in range(self.max_L + 1)
            )
            object.__setattr__(self, "hidden_irreps", irreps)
        channels, ls = mace.parse_hidden_irreps(self.hidden_irreps)
        object.__setattr__(self, "num_channels", channels)
        object.__setattr__(self, "max_L", max(ls))
        for name in ("correlation", "radial_MLP"):
            _freeze(self, name)
        if isinstance(self.correlation, tuple) and len(self.correlation) != self.num_interactions:
            raise ValueError("correlation: one value per interaction expected")
        if self.model_type not in ("MACE", "ScaleShiftMACE"):
            raise ValueError(f"model_type must be MACE or ScaleShiftMACE, got {self.model_type!r}")
        for name in (self.interaction_first, self.interaction):
            if name not in INTERACTIONS:
                raise ValueError(f"interaction {name!r} not supported; choose from {INTERACTIONS}")
        if self.max_L > self.max_ell:
            raise ValueError("hidden_irreps degree exceeds max_ell")
        silu_constant(self.silu_normalization)
        object.__setattr__(self, "long_range", as_rsa_config(self.long_range, r_max=self.r_max))
        if self.long_range is not None:
            self.long_range.check_model(self.num_interactions, self.num_channels)
        if self.num_interactions < 1:
            raise ValueError("num_interactions must be >= 1")


@dataclasses.dataclass(frozen=True)
class DatasetInfo:
    """What a model's training data says: its elements, their reference energies (E0s, eV), the
    mean number of neighbours within the cutoff (messages are divided by it) and ScaleShiftMACE's
    ``scale`` and ``shift`` (eV). Computed from the training set by ``rsajax train``
    (:func:`rsajax.train.setup.dataset_info`) or read from a converted model."""

    atomic_numbers: tuple[int, ...] = (1,)
    atomic_energies: tuple[float, ...] = (0.0,)
    avg_num_neighbors: float = 1.0
    scale: float = 1.0
    shift: float = 0.0

    def __post_init__(self):
        for name in ("atomic_numbers", "atomic_energies"):
            _freeze(self, name)
        if len(self.atomic_numbers) != len(self.atomic_energies):
            raise ValueError("atomic_numbers and atomic_energies must have the same length")


def _freeze(config, name: str) -> None:
    """Store a list or array field of a frozen dataclass as a tuple (hashable, compares equal
    to its JSON round trip after :func:`tuple`)."""
    value = getattr(config, name)
    if isinstance(value, list | np.ndarray):
        object.__setattr__(config, name, tuple(np.asarray(value).tolist()))


@dataclasses.dataclass(frozen=True)
class MACEConfig(DatasetInfo, MACEArchitecture):
    """A model's whole description: its architecture (:class:`MACEArchitecture`), what its
    training data says (:class:`DatasetInfo`) and the dtype it computes in. Saved as one flat
    dict of their fields (``config.json``). Build it from the parts with :meth:`build`, or give
    any of the fields as keywords."""

    dtype: str = "float64"

    def __post_init__(self):
        MACEArchitecture.__post_init__(self)
        DatasetInfo.__post_init__(self)

    @classmethod
    def build(
        cls, architecture: MACEArchitecture, dataset_info: DatasetInfo, dtype: str = "float64"
    ) -> MACEConfig:
        """The config of a model with ``architecture``, trained on data described by
        ``dataset_info``, computing in ``dtype``."""
        return cls(**_fields_of(architecture), **_fields_of(dataset_info), dtype=dtype)

    @property
    def architecture(self) -> MACEArchitecture:
        return MACEArchitecture(**_fields_of(self, MACEArchitecture))

    @property
    def dataset_info(self) -> DatasetInfo:
        return DatasetInfo(**_fields_of(self, DatasetInfo))

    def correlation_of(self, layer: int) -> int:
        c = self.correlation
        return c[layer] if isinstance(c, tuple) else c

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> MACEConfig:
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - fields
        if unknown:
            raise ValueError(f"unknown MACEConfig fields: {sorted(unknown)}")
        return cls(**d)


def _fields_of(config, cls=None) -> dict[str, Any]:
    """Field name -> value of ``config`` for the fields of ``cls`` (default: its own class)."""
    return {f.name: getattr(config, f.name) for f in dataclasses.fields(cls or config)}


def species_index_table(atomic_numbers: tuple[int, ...]) -> np.ndarray:
    """(119,) map atomic number -> element index, -1 where the model has no such element."""
    table = np.full(119, -1, dtype=np.int32)
    table[np.asarray(atomic_numbers, dtype=np.int64)] = np.arange(len(atomic_numbers))
    return table


def check_species(config: MACEConfig, species: np.ndarray) -> None:
    """Raise ValueError naming any element (Z > 0) missing from the model's element table."""
    from ase.data import chemical_symbols

    present = set(np.unique(np.asarray(species)).tolist()) - {0}
    missing = sorted(present - set(config.atomic_numbers))
    if missing:
        names = ", ".join(f"{chemical_symbols[z]} (Z={z})" for z in missing)
        known = ", ".join(chemical_symbols[z] for z in config.atomic_numbers)
        raise InputError(f"element(s) {names} not in the model's element table [{known}]")


class MACE(nn.Module):
    """MACE / ScaleShiftMACE energy model on a padded :class:`rsajax.graph.Graph`."""

    config: MACEConfig
    #: Evaluate with every RSA output set to zero (the short-range part of a feature-combined
    #: RSA-MACE; used by :meth:`energy_parts`). Parameters are unchanged.
    long_range_off: bool = False

    def combine(
        self,
        layer: int,
        h_in: mace.Features,
        h_out: mace.Features,
        graph: Graph,
        positions: jax.Array,
    ) -> tuple[mace.Features, jax.Array | None]:
        """Hook for long-range models: may replace layer ``layer``'s output ``h_out`` and add
        per-node energies (N,) (None: none); it sees the layer's input ``h_in`` (scalars in
        ``h_in[0]``, (N, C, 1)). Identity for plain MACE."""
        if self.config.long_range is not None:
            return long_range_combine(
                self.config.long_range,
                self.config.num_channels,
                layer,
                h_in,
                h_out,
                graph,
                positions,
            )
        return h_out, None

    def __call__(self, graph: Graph) -> jax.Array:
        """Per-graph energies (G,); padded nodes and the padding graph contribute zero."""
        return jax.ops.segment_sum(
            self.node_energies(graph), graph.node_graph, num_segments=graph.num_graphs
        )

    def node_energies(self, graph: Graph) -> jax.Array:
        """(N,) per-atom energies including E0, zero on padded nodes."""
        return self.node_energy_parts(graph)[0]

    def energy_parts(self, graph: Graph) -> tuple[jax.Array, jax.Array]:
        """Per-graph ``(energy, long_range_energy)``, both (G,).

        ``long_range_energy`` is what the RSA branch adds to the energy: the sum of the ``energy``
        combination's terms (exactly additive: ``energy - long_range_energy`` is the short-range
        MACE's energy). For the feature combinations (``tp``, ``gate``, ``residual``) ``u`` is
        mixed into the features and no additive part exists: it is the energy minus that of the
        same parameters with every RSA output set to zero (one more forward pass). Zero for a
        short-range model.
        """
        total, long_range = self.node_energy_parts(graph)
        lr = self.config.long_range
        if lr is not None and lr.combine != "energy":
            # Same parameters, u = 0: an unbound copy (parent=None; a submodule may only be made
            # in setup or a compact method), applied to this module's variables.
            switched_off = self.clone(parent=None, long_range_off=True)
            total_off = switched_off.apply(self.variables, graph, method=MACE.node_energies)
            long_range = total - total_off
        segments = dict(segment_ids=graph.node_graph, num_segments=graph.num_graphs)
        return jax.ops.segment_sum(total, **segments), jax.ops.segment_sum(long_range, **segments)

    @nn.compact
    def node_energy_parts(self, graph: Graph) -> tuple[jax.Array, jax.Array]:
        """(N,) per-atom energies including E0 and (N,) their additive long-range part (the
        ``energy`` combination's terms; 0 otherwise), both zero on padded nodes."""
        cfg = self.config
        dt = jnp.dtype(cfg.dtype)
        num_elements = len(cfg.atomic_numbers)
        silu_norm = silu_constant(cfg.silu_normalization)
        _, ls_hidden = mace.parse_hidden_irreps(cfg.hidden_irreps)
        channels = cfg.num_channels

        positions = graph.positions.astype(dt)
        graph = graph.replace(cell=graph.cell.astype(dt))
        index = jnp.asarray(species_index_table(cfg.atomic_numbers))[graph.species]
        node_mask = graph.node_mask & (index >= 0)
        one_hot = jax.nn.one_hot(jnp.where(node_mask, index, 0), num_elements, dtype=dt)
        one_hot = one_hot * node_mask[:, None].astype(dt)

        edge_mask = graph.edge_mask
        vectors = edge_vectors(positions, graph)
        lengths = safe_norm(vectors, edge_mask)
        unit_fill = jnp.array([0.0, 0.0, 1.0], dt)
        vectors = jnp.where(edge_mask[:, None], vectors, unit_fill)
        sh = mace.spherical_harmonics(vectors, cfg.max_ell)
        cutoff = polynomial_cutoff(lengths, cfg.r_max, cfg.num_polynomial_cutoff)
        cutoff = jnp.where(edge_mask, cutoff, 0.0)
        edge_feats = bessel_basis(lengths, cfg.r_max, cfg.num_bessel)
        if cfg.apply_cutoff:
            edge_feats = edge_feats * cutoff[:, None]
        edge_feats = jnp.where(edge_mask[:, None], edge_feats, 0.0)

        embedding = self.param(
            "node_embedding", nn.initializers.normal(1.0), (num_elements, channels), dt
        )
        h = {0: (one_hot @ embedding / float(np.sqrt(num_elements)))[:, :, None]}

        readout_energies, long_range_energies = [], []
        for t in range(cfg.num_interactions):
            last = t == cfg.num_interactions - 1
            ls_in = (0,) if t == 0 else ls_hidden
            ls_out = (0,) if last else ls_hidden
            block = cfg.interaction_first if t == 0 else cfg.interaction
            # remat: recompute each interaction's per-edge tensors in the backward pass instead of
            # storing them (less memory for forces on large systems, ~1.3x more compute).
            interaction_cls = nn.remat(mace.Interaction) if cfg.remat else mace.Interaction
            message, sc = interaction_cls(
                ls_in=ls_in,
                ls_skip=ls_out,
                channels=channels,
                max_ell=cfg.max_ell,
                num_elements=num_elements,
                radial_mlp=cfg.radial_MLP,
                avg_num_neighbors=cfg.avg_num_neighbors,
                residual="Residual" in block,
                silu_norm=silu_norm,
                apply_cutoff=cfg.apply_cutoff,
                param_dtype=dt,
                name=f"interactions_{t}",
            )(h, one_hot, sh, edge_feats, cutoff, graph.senders, graph.receivers)
            h_out = mace.ProductBasis(
                ls_in=tuple(range(cfg.max_ell + 1)),
                ls_out=ls_out,
                channels=channels,
                correlation=cfg.correlation_of(t),
                num_elements=num_elements,
                param_dtype=dt,
                name=f"products_{t}",
            )(message, one_hot, sc)
            if self.long_range_off:
                h = h_out
            else:
                h, layer_energy = self.combine(t, h, h_out, graph, positions)
                if layer_energy is not None:
                    long_range_energies.append(layer_energy)
            if last and cfg.num_interactions > 1:
                mlp = int(mace.e3nn.Irreps(cfg.MLP_irreps).simplify()[0].mul)
                readout = mace.NonLinearReadout(mlp, silu_norm, dt, name=f"readouts_{t}")
            else:
                readout = mace.LinearReadout(dt, name=f"readouts_{t}")
            readout_energies.append(readout(h))

        node_inter = sum(readout_energies)
        if cfg.model_type == "ScaleShiftMACE":
            node_inter = cfg.scale * node_inter + cfg.shift
        e0 = one_hot @ jnp.asarray(cfg.atomic_energies, dt)
        # The long-range energy is in eV already (Coulomb constant), outside scale and shift.
        long_range = sum(long_range_energies) if long_range_energies else jnp.zeros_like(e0)
        long_range = jnp.where(node_mask, long_range, 0.0)
        return jnp.where(node_mask, e0 + node_inter + long_range, 0.0), long_range


def dummy_graph(config: MACEConfig) -> Graph:
    """A two-atom open-boundary graph (plus padding) used to initialise parameters."""
    z = config.atomic_numbers[0]
    dt = jnp.dtype(config.dtype)
    return pad_graph(
        species=jnp.array([z, z], jnp.int32),
        positions=jnp.array([[0.0, 0.0, 0.0], [1.0, 0.5, 0.2]], dt),
        node_graph=jnp.zeros(2, jnp.int32),
        cell=jnp.zeros((1, 3, 3), dt),
        pbc=jnp.zeros((1, 3), bool),
        n_node=jnp.array([2], jnp.int32),
        n_edge=jnp.array([2], jnp.int32),
        weight=jnp.ones(1, dt),
        senders=jnp.array([0, 1], jnp.int32),
        receivers=jnp.array([1, 0], jnp.int32),
        cell_offsets=jnp.zeros((2, 3), jnp.int32),
    )


def init_model(config: MACEConfig, seed: int = 0) -> tuple[MACE, dict]:
    """A fresh model and its variables ``{"params", "constants"}``."""
    model = MACE(config)
    graph = dummy_graph(config)
    if config.long_range is not None:
        graph = graph.replace(kset=init_kset(config.long_range, graph))
    variables = jax.jit(model.init)(jax.random.PRNGKey(seed), graph)
    return model, jax.tree_util.tree_map(np.asarray, dict(variables))


def save_model(directory: str | Path, config: MACEConfig, variables: dict) -> Path:
    """Write ``config.json`` and ``params.msgpack`` into ``directory``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    meta = {"format": FORMAT_NAME, "version": FORMAT_VERSION, "config": config.to_dict()}
    (directory / CONFIG_FILE).write_text(json.dumps(meta, indent=2))
    state = jax.tree_util.tree_map(np.asarray, dict(variables))
    (directory / PARAMS_FILE).write_bytes(flax.serialization.msgpack_serialize(state))
    return directory


def load_model(directory: str | Path) -> tuple[MACE, dict]:
    """Load a directory written by :func:`save_model` (or ``rsajax convert``)."""
    directory = Path(directory)
    config_path, params_path = directory / CONFIG_FILE, directory / PARAMS_FILE
    if not directory.is_dir() or not config_path.is_file() or not params_path.is_file():
        raise FileNotFoundError(
            f"{directory}: not an rsajax model directory (needs "
            f"{CONFIG_FILE} and {PARAMS_FILE}); convert mace-torch files "
            "with `rsajax convert model.pt OUT`"
        )
    try:
        meta = json.loads(config_path.read_text())
    except json.JSONDecodeError as err:
        raise InputError(f"{config_path}: not valid JSON ({err})") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
        raise InputError(
            f"{config_path}: not an rsajax MACE config (format "
            f"{meta.get('format') if isinstance(meta, dict) else None!r})"
        )
    if meta.get("version") != FORMAT_VERSION:
        raise InputError(
            f"{config_path}: format version {meta.get('version')} is not supported "
            f"(this rsajax reads version {FORMAT_VERSION})"
        )
    stored = dict(meta["config"])
    if isinstance(stored.get("long_range"), dict):
        # Models saved before an RSAConfig field existed were trained without what it adds.
        stored["long_range"] = {**RSA_FIELDS_ADDED_LATER, **stored["long_range"]}
    config = MACEConfig.from_dict(stored)
    state = flax.serialization.msgpack_restore(params_path.read_bytes())
    return MACE(config), {k: dict(v) for k, v in state.items()}
