"""mace-torch MACE / ScaleShiftMACE -> rsajax parameters and config.

Torch is imported only here. Every rsajax parameter starts as NaN and must be filled; every torch
tensor must be either mapped or on :data:`SKIPPED` (checked buffers, empty tensors, values moved
to the config). Anything else is an error, so a new mace-torch feature cannot be dropped silently.
"""

from __future__ import annotations

import re
from pathlib import Path

import jax
import numpy as np

from rsajax.errors import InputError
from rsajax.nn import mace
from rsajax.nn.model import (
    MACE,
    DatasetInfo,
    MACEArchitecture,
    MACEConfig,
    dummy_graph,
    save_model,
)

#: torch state_dict entries that carry no parameter: config values, masks, constants we check.
SKIPPED = (
    r"atomic_numbers",
    r"r_max",
    r"num_interactions",
    r"atomic_energies_fn\.atomic_energies",
    r"scale_shift\.(scale|shift)",
    r".*\.output_mask",
    r".*\.bias",
    r"interactions\.\d+\.conv_tp\.weight",
    r"radial_embedding\.bessel_fn\.(bessel_weights|r_max|prefactor)",
    r"radial_embedding\.cutoff_fn\.(p|r_max)",
    r"interactions\.\d+\.conv_tp\._compiled_main_left_right\._w3j_\d+_\d+_\d+",
    r"products\.\d+\.symmetric_contractions\.contractions\.\d+\.weights_(\d+|max)_zeroed",
)


class ConversionError(InputError):
    """The torch model cannot be converted exactly."""


def import_torch():
    """Import torch with the e3nn 0.4.4 / torch >= 2.6 pickling fix applied."""
    try:
        import torch
    except ImportError as err:
        raise ImportError(
            "converting mace-torch models needs the [torch] extra (pip install 'rsajax[torch]')"
        ) from err
    torch.serialization.add_safe_globals([slice])
    return torch


def load_torch_model(path: str | Path):
    """Load a pickled mace-torch model from ``path`` (a ``.model`` / ``.pt`` file)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such file")
    torch = import_torch()
    try:
        obj = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as err:  # torch raises many types for non-checkpoint files
        raise ConversionError(
            f"{path}: not a torch model file ({type(err).__name__}: {err})"
        ) from err
    if isinstance(obj, dict):
        raise ConversionError(
            f"{path}: holds a state_dict/checkpoint dict, not a model object; "
            "save the model itself (mace-torch `*.model` files)"
        )
    if type(obj).__name__ not in ("MACE", "ScaleShiftMACE"):
        raise ConversionError(
            f"{path}: model class {type(obj).__name__} is not supported (MACE or ScaleShiftMACE)"
        )
    return obj


def _check_supported(model) -> None:
    if len(getattr(model, "heads", ["Default"])) != 1:
        raise ConversionError(f"multi-head models are not supported (heads={model.heads})")
    for attr in ("pair_repulsion", "joint_embedding", "embedding_readout"):
        if hasattr(model, attr):
            raise ConversionError(f"mace-torch feature {attr!r} is not supported")
    radial = model.radial_embedding
    if type(radial.bessel_fn).__name__ != "BesselBasis" or hasattr(radial, "distance_transform"):
        raise ConversionError(
            "only the Bessel radial basis without distance transform is supported"
        )
    for flag in (
        "use_so3",
        "use_agnostic_product",
        "use_last_readout_only",
        "use_edge_irreps_first",
    ):
        if getattr(model, flag, False):
            raise ConversionError(f"mace-torch option {flag}=True is not supported")
    if getattr(model, "edge_irreps", None) is not None:
        raise ConversionError("mace-torch option edge_irreps is not supported")
    last = model.readouts[-1]
    if hasattr(last, "non_linearity"):
        act = last.non_linearity.acts[0]
        name = getattr(getattr(act, "f", act), "__name__", str(act))
        if "silu" not in name:
            raise ConversionError(f"readout gate {name} is not supported (silu only)")


def config_from_torch(model) -> MACEConfig:
    """Hyperparameters read from the model object (several are not in the state_dict)."""
    _check_supported(model)
    n = int(model.num_interactions)
    inter0 = model.interactions[0]
    hidden = (
        str(model.products[0].linear.irreps_out)
        if n == 1
        else str(model.products[0].linear.irreps_out.simplify())
    )
    energies = np.asarray(model.atomic_energies_fn.atomic_energies.detach().cpu().numpy())
    if energies.ndim == 2:
        energies = energies[:, 0] if energies.shape[1] == 1 else energies[0]
    scale, shift = 1.0, 0.0
    if type(model).__name__ == "ScaleShiftMACE":
        scale = float(np.ravel(model.scale_shift.scale.detach().cpu().numpy())[0])
        shift = float(np.ravel(model.scale_shift.shift.detach().cpu().numpy())[0])
    mlp = str(model.readouts[-1].hidden_irreps) if n > 1 else "16x0e"
    architecture = MACEArchitecture(
        r_max=float(model.r_max),
        num_bessel=int(model.radial_embedding.bessel_fn.bessel_weights.numel()),
        num_polynomial_cutoff=int(model.radial_embedding.cutoff_fn.p),
        max_ell=int(model.spherical_harmonics.irreps_out.lmax),
        hidden_irreps=hidden,
        correlation=tuple(
            int(p.symmetric_contractions.contractions[0].correlation) for p in model.products
        ),
        num_interactions=n,
        MLP_irreps=mlp,
        radial_MLP=tuple(int(x) for x in inter0.radial_MLP),
        model_type=type(model).__name__,
        interaction_first=type(model.interactions[0]).__name__,
        interaction=type(model.interactions[-1]).__name__,
        apply_cutoff=bool(getattr(model, "apply_cutoff", True)),
        silu_normalization="torch",
    )
    dataset_info = DatasetInfo(
        atomic_numbers=tuple(int(z) for z in model.atomic_numbers),
        atomic_energies=tuple(float(e) for e in energies),
        avg_num_neighbors=float(inter0.avg_num_neighbors),
        scale=scale,
        shift=shift,
    )
    return MACEConfig.build(architecture, dataset_info, dtype=torch_dtype(model))


def torch_dtype(model) -> str:
    """``"float32"`` or ``"float64"``: the dtype of the model's floating parameters."""
    kinds = {
        str(p.dtype).removeprefix("torch.") for p in model.parameters() if p.is_floating_point()
    }
    if len(kinds) != 1 or not kinds <= {"float32", "float64"}:
        raise ConversionError(f"parameters must all be float32 or all float64, got {sorted(kinds)}")
    return kinds.pop()


class _Source:
    """The torch state_dict with a record of which entries were read."""

    def __init__(self, model):
        # float64 copies for the bookkeeping (exact for float32), plus each tensor's stored dtype
        self.stored = {
            k: str(v.dtype).removeprefix("torch.") for k, v in model.state_dict().items()
        }
        self.tensors = {
            k: v.detach().cpu().double().numpy()
            if v.is_floating_point()
            else v.detach().cpu().numpy()
            for k, v in model.state_dict().items()
        }
        self.used: set[str] = set()

    def take(self, key: str) -> np.ndarray:
        if key not in self.tensors:
            raise ConversionError(f"torch state_dict has no entry {key!r}")
        self.used.add(key)
        return self.tensors[key]

    def check_all_used(self) -> None:
        left = [
            k
            for k in self.tensors
            if k not in self.used and not any(re.fullmatch(p, k) for p in SKIPPED)
        ]
        if left:
            raise ConversionError(f"torch tensors not mapped and not on the skip list: {left}")


def _linear_blocks(src: _Source, prefix: str, linear) -> dict[str, np.ndarray]:
    """Split an e3nn ``o3.Linear`` flat weight into {l_out: (sum mul_in, mul_out)} blocks.

    Several input blocks of one degree (unsimplified irreps, e.g. one per tensor-product path)
    stack along the input axis in instruction order, which is the order rsajax concatenates them.
    """
    flat, offset = src.take(f"{prefix}.weight"), 0
    blocks: dict[int, list[np.ndarray]] = {}
    weights: dict[int, list[float]] = {}
    for ins in linear.instructions:
        size = int(np.prod(ins.path_shape))
        l = linear.irreps_out[ins.i_out].ir.l
        blocks.setdefault(l, []).append(flat[offset : offset + size].reshape(ins.path_shape))
        weights.setdefault(l, []).append(ins.path_weight)
        offset += size
    if offset != flat.size:
        raise ConversionError(f"{prefix}: {flat.size - offset} weights left over")
    out = {}
    for l, parts in blocks.items():
        fan_in = sum(b.shape[0] for b in parts)
        if not np.allclose(weights[l], 1.0 / np.sqrt(fan_in)):
            raise ConversionError(f"{prefix}: unexpected path weights {weights[l]} for l={l}")
        out[f"w{l}"] = np.concatenate(parts, axis=0)
    return out


def _skip_blocks(src: _Source, prefix: str, tp) -> dict[str, np.ndarray]:
    """Split a ``FullyConnectedTensorProduct(x, one_hot)`` weight into {l: (C_in, E, C_out)}."""
    flat, offset, blocks = src.take(f"{prefix}.weight"), 0, {}
    for ins in tp.instructions:
        size = int(np.prod(ins.path_shape))
        blocks[f"w{tp.irreps_out[ins.i_out].ir.l}"] = flat[offset : offset + size].reshape(
            ins.path_shape
        )
        offset += size
    if offset != flat.size:
        raise ConversionError(f"{prefix}: {flat.size - offset} weights left over")
    return blocks


def _check_conv_paths(prefix: str, inter, ls_in: tuple[int, ...], max_ell: int) -> None:
    tp = inter.conv_tp
    torch_paths = tuple(
        (tp.irreps_in1[i.i_in1].ir.l, tp.irreps_in2[i.i_in2].ir.l, tp.irreps_out[i.i_out].ir.l)
        for i in tp.instructions
    )
    if torch_paths != mace.conv_paths(ls_in, max_ell):
        raise ConversionError(f"{prefix}.conv_tp: path order {torch_paths} differs from rsajax's")


#: Allowed deviation of a checked constant from rsajax's value, in units of the machine epsilon
#: of the precision it was computed in (mace-torch rounds pi / r_max * n and e3nn's Clebsch-Gordan
#: coefficients to 1-2 ulps, and e3nn-torch and e3nn-jax Clebsch-Gordan tables differ by up
#: to 9 float64 ulps).
ULPS = 32


def computed_precision(stored: str, values: np.ndarray) -> type:
    """The float type a constant was computed in: its stored dtype, except that float64 values
    that are all exact float32 numbers come from a float32 model saved as float64 (the rounding
    of float32 cannot be undone by the cast)."""
    if stored == "float32" or np.array_equal(values.astype(np.float32), values):
        return np.float32
    return np.float64


def _check_constant(src: _Source, key: str, expected: np.ndarray, relative: bool) -> bool:
    """Whether constant ``key`` equals ``expected`` to ULPS ulps of the precision it was computed
    in (relative to each value, or to the largest magnitude for mostly-zero tables)."""
    values = src.tensors[key]
    eps = float(np.finfo(computed_precision(src.stored[key], values)).eps)
    scale = np.abs(expected) if relative else np.max(np.abs(expected), initial=1.0)
    return values.shape == expected.shape and bool(
        np.all(np.abs(values - expected) <= ULPS * eps * scale)
    )


def _check_constants(src: _Source, config: MACEConfig) -> None:
    """Buffers that are skipped must still equal what rsajax computes, at the precision the torch
    model computed them in: a float32 model's Bessel frequencies differ from the float64 ones by
    float32 rounding, a trained or edited frequency by far more."""
    r_max, nb = config.r_max, config.num_bessel
    expected = np.pi / r_max * np.linspace(1.0, nb, nb)
    if not _check_constant(src, "radial_embedding.bessel_fn.bessel_weights", expected, True):
        got = src.tensors["radial_embedding.bessel_fn.bessel_weights"]
        raise ConversionError(
            "trained/modified Bessel frequencies are not supported: "
            f"{np.array2string(got, max_line_width=10**6)} vs pi / r_max * (1..{nb}) = "
            f"{np.array2string(expected, max_line_width=10**6)}"
        )
    for key in src.tensors:
        m = re.fullmatch(r".*\._w3j_(\d+)_(\d+)_(\d+)", key)
        if m and not _check_constant(src, key, mace.wigner_3j(*map(int, m.groups())), False):
            raise ConversionError(f"{key}: e3nn-jax Clebsch-Gordan differs from torch's")


def variables_from_torch(model, config: MACEConfig) -> dict:
    """rsajax variables ``{"params", "constants"}`` holding the torch model's weights."""
    src = _Source(model)
    # Shapes only: no compilation, the template is NaN-filled anyway.
    template = jax.eval_shape(MACE(config).init, jax.random.PRNGKey(0), dummy_graph(config))
    params = jax.tree_util.tree_map(lambda x: np.full(x.shape, np.nan), template["params"])
    constants: dict = {}
    _, ls_hidden = mace.parse_hidden_irreps(config.hidden_irreps)
    num_elements = len(config.atomic_numbers)
    params["node_embedding"] = src.take("node_embedding.linear.weight").reshape(num_elements, -1)
    for t in range(config.num_interactions):
        p, inter = f"interactions.{t}", model.interactions[t]
        ls_in = (0,) if t == 0 else ls_hidden
        _check_conv_paths(p, inter, ls_in, config.max_ell)
        dest = params[f"interactions_{t}"]
        for name in ("linear_up", "linear"):
            _assign(dest[name], _linear_blocks(src, f"{p}.{name}", getattr(inter, name)), p)
        _assign(dest["skip_tp"], _skip_blocks(src, f"{p}.skip_tp", inter.skip_tp), p)
        for i in range(len(config.radial_MLP) + 1):
            dest["conv_tp_weights"][f"layer{i}"] = src.take(f"{p}.conv_tp_weights.layer{i}.weight")
        p, prod = f"products.{t}", model.products[t]
        dest = params[f"products_{t}"]
        _assign(dest["linear"], _linear_blocks(src, f"{p}.linear", prod.linear), p)
        sc_params, sc_consts = {}, {}
        sc = prod.symmetric_contractions
        for i, contraction in enumerate(sc.contractions):
            l_out = sc.irreps_out[i].ir.l
            corr = contraction.correlation
            cp = f"{p}.symmetric_contractions.contractions.{i}"
            for nu in range(1, corr + 1):
                u = src.take(f"{cp}.U_matrix_{nu}")
                sc_consts[f"U_{l_out}_{nu}"] = u[None] if l_out == 0 else u
                key = f"{cp}.weights_max" if nu == corr else f"{cp}.weights.{corr - 1 - nu}"
                sc_params[f"W_{l_out}_{nu}"] = src.take(key)
        dest["symmetric_contractions"] = sc_params
        constants[f"products_{t}"] = {"symmetric_contractions": sc_consts}
        p, dest = f"readouts.{t}", params[f"readouts_{t}"]
        readout = model.readouts[t]
        names = ("linear",) if "linear" in dest else ("linear_1", "linear_2")
        for name in names:
            _assign(dest[name], _linear_blocks(src, f"{p}.{name}", getattr(readout, name)), p)
    _check_constants(src, config)
    src.check_all_used()
    _check_filled(params, template["params"])
    # float32 -> float64 -> float32 is exact: a float32 model keeps its very weights
    return jax.tree_util.tree_map(
        lambda x: np.asarray(x, config.dtype), {"params": params, "constants": constants}
    )


def _assign(dest: dict, blocks: dict[str, np.ndarray], where: str) -> None:
    for name, value in blocks.items():
        if name not in dest:
            raise ConversionError(f"{where}: torch has a block {name} that rsajax does not")
        if dest[name].shape != value.shape:
            raise ConversionError(f"{where}.{name}: shape {value.shape} != {dest[name].shape}")
        dest[name] = value


def _check_filled(params: dict, template: dict) -> None:
    flat = jax.tree_util.tree_flatten_with_path(params)[0]
    for path, value in flat:
        name = jax.tree_util.keystr(path)
        if "symmetric_contractions" not in name and np.isnan(value).any():
            raise ConversionError(f"parameter {name} was not filled from the torch model")
    if jax.tree_util.tree_structure(params) != jax.tree_util.tree_structure(template):
        raise ConversionError("converted parameter tree differs from the rsajax model's")


def convert(path: str | Path, out_dir: str | Path) -> tuple[MACEConfig, dict]:
    """Convert a mace-torch model file into an rsajax model directory."""
    model = load_torch_model(path)
    config = config_from_torch(model)
    variables = variables_from_torch(model, config)
    save_model(out_dir, config, variables)
    return config, variables
