"""Plane-wave phases ``cos(2 pi x)``, ``sin(2 pi x)`` of phases counted in turns.

Every lattice sum evaluates ``exp(i k . r)`` for every (atom, k-vector) pair, and on a CPU those
cosines and sines are most of the direct RSA kernel's time: XLA's ``cos`` and ``sin`` reduce the
argument and evaluate each function separately, at 7-20 ns per element on this project's 2-core
machine. Counting the phase in turns, ``x = k . r / 2 pi``, makes the range reduction exact and
cheap: ``x - round(4 x) / 4`` is an angle in ``[-pi/4, pi/4]`` with no rounding error, where a
short Taylor series is accurate to the dtype's precision, and the quadrant ``round(4 x) mod 4``
picks signs. ``sin(2 pi x)`` is ``cos(2 pi (x - 1/4))``, so the cosines and sines of a lattice
sum come from fused multiply-adds only: 2-8 times faster than ``jnp.cos`` plus ``jnp.sin`` in
float32 and float64 on the CPU, depending on the load (``benchmarks/rsa_scaling.py --tables 9``
measures it side by side).

The RSA kernel uses it. The Ewald teacher (:mod:`rsajax.teachers.ewald`) keeps ``jnp.cos`` and
``jnp.sin``: its float32 MD generated the shipped dataset, which ``tests/teachers/test_dataset.py``
regenerates bit for bit, and a different rounding of the phases sends that chaotic trajectory
elsewhere within 2 ps.

Accuracy: the polynomial's truncation error is below 3e-8 (float32, 5 terms) and 2e-18 (float64,
9 terms) on ``[-pi/4, pi/4]``; what remains is the rounding of ``x`` itself, the same as that of
the angle ``k . r`` which ``jnp.cos`` would be given. The derivative is defined analytically
(``d cos(2 pi x) = -2 pi sin(2 pi x) dx``) by :func:`jax.custom_jvp`, so gradients of any
order reuse the same evaluation.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

#: Taylor terms of cos and sin on [-pi/4, pi/4] per dtype size: the first left-out term,
#: (pi/4)^(2n) / (2n)!, is 2.4e-8 for 5 terms and 1.8e-18 for 9.
_TERMS = {2: 4, 4: 5, 8: 9}


def _series(angle_sq: jnp.ndarray, coefficients: list[float]) -> jnp.ndarray:
    """Horner evaluation of ``sum_j c_j a^(2j)`` (``angle_sq`` = ``a^2``)."""
    total = jnp.full_like(angle_sq, coefficients[-1])
    for c in coefficients[-2::-1]:
        total = total * angle_sq + c
    return total


@jax.custom_jvp
def cos_sin_turns(turns: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """``(cos(2 pi x), sin(2 pi x))`` of a real array ``x`` of phases in turns, from one range
    reduction and one pair of series.

    The derivative reuses the values (``d cos = -2 pi sin dx``, ``d sin = 2 pi cos dx``), so a
    kernel's forces evaluate no further trigonometry; evaluating ``cos_turns(x)`` and
    ``cos_turns(x - 0.25)`` separately takes four series for the values and four more for
    their derivatives.

    Args:
        turns: (...) real array ``x = k . r / (2 pi)``.
    Returns:
        two (...) arrays, same dtype.
    """
    quarter = jnp.round(4.0 * turns)
    angle = (2.0 * math.pi) * (turns - 0.25 * quarter)  # in [-pi/4, pi/4], reduction exact
    quadrant = jnp.mod(quarter, 4.0)
    angle_sq = angle * angle
    n = _TERMS[jnp.dtype(turns.dtype).itemsize]
    cos_a = _series(angle_sq, [(-1) ** j / math.factorial(2 * j) for j in range(n)])
    sin_a = angle * _series(angle_sq, [(-1) ** j / math.factorial(2 * j + 1) for j in range(n)])
    # (cos, sin)(a + q pi/2) for the quadrant q: (cos a, sin a), (-sin a, cos a),
    # (-cos a, -sin a), (sin a, -cos a)
    first_half = quadrant < 2
    cos = jnp.where(first_half, jnp.where(quadrant == 0, cos_a, -sin_a),
                    jnp.where(quadrant == 2, -cos_a, sin_a))  # fmt: skip
    sin = jnp.where(first_half, jnp.where(quadrant == 0, sin_a, cos_a),
                    jnp.where(quadrant == 2, -sin_a, -cos_a))  # fmt: skip
    return cos, sin


@cos_sin_turns.defjvp
def _cos_sin_turns_jvp(primals, tangents):
    (turns,), (dturns,) = primals, tangents
    cos, sin = cos_sin_turns(turns)
    rate = (2.0 * math.pi) * dturns
    return (cos, sin), (-sin * rate, cos * rate)


def cos_turns(turns: jnp.ndarray) -> jnp.ndarray:
    """``cos(2 pi x)`` of a real array ``x`` of phases in turns (:func:`cos_sin_turns`).

    Args:
        turns: (...) real array ``x = k . r / (2 pi)``.
    Returns:
        (...) ``cos(2 pi x)``, same dtype.
    """
    return cos_sin_turns(turns)[0]
