"""Experimental reference for vitreous silica: the NIMROD neutron curve and literature values.

The NIMROD file (ISIS, as distributed with the Dissolve code) is read from a path the user gives;
the project does not ship it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from rsajax.errors import InputError

#: <b>^2 = (sum_a c_a b_a)^2 of SiO2 in barn, to turn F(Q) (barn/sr/atom) into S_N(Q).
SIO2_MEAN_B_SQUARED_BARN = 0.2758


@dataclass(frozen=True)
class ExperimentalCurve:
    """A measured total structure factor.

    Attributes:
        q: (K,) momentum transfer, 1/A.
        s: (K,) S(Q).
        error: (K,) one-sigma error of S(Q).
        source: where the data came from.
    """

    q: np.ndarray
    s: np.ndarray
    error: np.ndarray
    source: str


def read_nimrod_mint01(
    path: str | Path, mean_b_squared: float = SIO2_MEAN_B_SQUARED_BARN
) -> ExperimentalCurve:
    """Read a NIMROD ``.mint01`` file (Q, F(Q), error) and return ``S_N = 1 + F / <b>^2``.

    Lines starting with ``#`` are header; data lines hold three numbers. The Q = 0 point and
    points with zero error (unmeasured) are dropped.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"experimental S(Q) file not found: {path}")
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            values = [float(p) for p in line.split()]
        except ValueError:
            values = []  # a word among the numbers: a malformed line
        if len(values) != 3:
            raise InputError(f"{path}:{n}: expected 3 columns (Q, F(Q), error), got {line!r}")
        rows.append(values)
    if not rows:
        raise InputError(f"{path}: no data lines")
    q, f, err = np.asarray(rows).T
    keep = (q > 0) & (err > 0)
    return ExperimentalCurve(
        q=q[keep],
        s=1.0 + f[keep] / mean_b_squared,
        error=err[keep] / mean_b_squared,
        source=str(path),
    )


#: Reference values for vitreous SiO2 (see ../shared/SILICA.md). Keys match the report table.
SILICA_REFERENCE: dict[str, dict[str, object]] = {
    "density_g_cm3": {"value": 2.20, "source": "handbook value for v-SiO2"},
    "r_SiO_A": {"value": "1.60-1.62", "source": "Mozzi & Warren, J. Appl. Cryst. 2, 164 (1969)"},
    "coordination_Si_O": {"value": 4.0, "source": "tetrahedral network"},
    "coordination_O_Si": {"value": 2.0, "source": "tetrahedral network"},
    "SiOSi_mean_deg": {
        "value": "147-151",
        "source": "Mauri et al., PRB 62, R4786 (2000); Charpentier et al., JPCC 113, 7917 (2009)",
    },
    "SiOSi_mode_deg": {"value": 144.0, "source": "Mozzi & Warren (1969), X-ray"},
    "SiOSi_std_deg": {"value": 11.0, "source": "Charpentier et al. (2009), NMR"},
    "OSiO_mean_deg": {"value": 109.47, "source": "ideal tetrahedron"},
    "fsdp_neutron_q": {"value": 1.47, "source": "NIMROD (ISIS) v-SiO2 data, Dissolve"},
    "fsdp_neutron_height": {"value": 1.44, "source": "NIMROD (ISIS) v-SiO2 data, Dissolve"},
    "fsdp_neutron_fwhm": {"value": 0.41, "source": "NIMROD (ISIS) v-SiO2 data, Dissolve"},
    "fsdp_xray_q": {"value": "1.50-1.55", "source": "commonly quoted X-ray value"},
}
