"""Random numbers inside compiled kernels: the xoshiro256+ generator and exact samplers
for the SBML ``distrib`` distributions (codes from ``sbml_cme.distributions``).

Every sampler reads uniforms from one trajectory's xoshiro256+ state (an array of four
uint64, advanced in place), so a draw depends only on that trajectory's stream: the same
seed gives the same draws whatever the number of threads or Dask workers. Samplers are
exact (inversion, Box-Muller, Marsaglia-Tsang, rejection for truncation); invalid
parameters give NaN, which the caller reports.
"""

from __future__ import annotations

import math

import numba
import numpy as np

#: Rejection rounds before a truncated draw gives up (NaN): the bounds hold almost none
#: of the distribution's mass.
MAX_REJECTIONS = 1_000_000


@numba.njit(cache=True, inline="always")
def _xoshiro(s0, s1, s2, s3):
    """One xoshiro256+ step: a uniform double in (0, 1] and the advanced state.

    The state is four uint64 scalars, so the hot loop keeps it in registers (passing
    the state array to a function per draw costs atomic reference-count updates)."""
    result = s0 + s3
    t = s1 << np.uint64(17)
    s2 ^= s0
    s3 ^= s1
    s1 ^= s2
    s0 ^= s3
    s2 ^= t
    s3 = (s3 << np.uint64(45)) | (s3 >> np.uint64(19))
    u = ((result >> np.uint64(11)) + np.uint64(1)) * (1.0 / 9007199254740992.0)
    return u, s0, s1, s2, s3


@numba.njit(cache=True)
def uniform(state):
    """A uniform double in (0, 1]; advances ``state`` (4,) uint64 in place."""
    u, s0, s1, s2, s3 = _xoshiro(state[0], state[1], state[2], state[3])
    state[0] = s0
    state[1] = s1
    state[2] = s2
    state[3] = s3
    return u


@numba.njit(cache=True)
def _standard_normal(state):
    # Box-Muller; uniforms in (0, 1] keep the logarithm finite.
    return math.sqrt(-2.0 * math.log(uniform(state))) * math.cos(2.0 * math.pi *
                                                                 uniform(state))


@numba.njit(cache=True)
def _standard_gamma(shape, state):
    """Gamma(shape, 1) by Marsaglia and Tsang (2000); shape < 1 by the boosting trick."""
    if shape < 1.0:
        return _standard_gamma(shape + 1.0, state) * uniform(state) ** (1.0 / shape)
    d = shape - 1.0 / 3.0
    c = 1.0 / math.sqrt(9.0 * d)
    while True:
        z = _standard_normal(state)
        v = 1.0 + c * z
        if v <= 0.0:
            continue
        v = v * v * v
        u = uniform(state)
        if math.log(u) < 0.5 * z * z + d - d * v + d * math.log(v):
            return d * v


@numba.njit(cache=True)
def _poisson(rate, state):
    """Poisson(rate) by inversion, in chunks of rate <= 500 (a sum of independent Poisson
    variables is Poisson, and exp(-500) does not underflow)."""
    total = 0.0
    remaining = rate
    while remaining > 0.0:
        chunk = min(remaining, 500.0)
        remaining -= chunk
        u = 1.0 - uniform(state)  # in [0, 1)
        k = 0.0
        probability = math.exp(-chunk)
        cumulative = probability
        while u >= cumulative and probability > 0.0:
            k += 1.0
            probability *= chunk / k
            cumulative += probability
        total += k
    return total


@numba.njit(cache=True)
def _binomial(trials, probability, state):
    """Binomial(trials, p) by inversion, in chunks small enough that (1-p)^m > 1e-200."""
    if probability == 0.0 or trials == 0.0:
        return 0.0
    if probability == 1.0:
        return trials
    chunk_size = max(1.0, math.floor(460.0 / -math.log1p(-probability)))
    total = 0.0
    remaining = trials
    while remaining > 0.0:
        m = min(remaining, chunk_size)
        remaining -= m
        u = 1.0 - uniform(state)
        k = 0.0
        pmf = math.exp(m * math.log1p(-probability))
        cumulative = pmf
        ratio = probability / (1.0 - probability)
        while u >= cumulative and k < m:
            pmf *= (m - k) / (k + 1.0) * ratio
            k += 1.0
            cumulative += pmf
        total += k
    return total


@numba.njit(cache=True)
def _untruncated(code, a, b, state):
    """One draw of distribution ``code`` with parameters ``a``, ``b``; NaN if invalid."""
    if code == 0:  # normal(mean, sd)
        return a + b * _standard_normal(state) if b >= 0.0 else math.nan
    if code == 1:  # uniform[min, max)
        return a + (b - a) * (1.0 - uniform(state)) if b >= a else math.nan
    if code == 2:  # bernoulli(p)
        if not (0.0 <= a <= 1.0):
            return math.nan
        return 1.0 if 1.0 - uniform(state) < a else 0.0
    if code == 3:  # binomial(n, p)
        if not (0.0 <= b <= 1.0) or a < 0.0 or a != math.floor(a):
            return math.nan
        return _binomial(a, b, state)
    if code == 4:  # cauchy(location, scale)
        return a + b * math.tan(math.pi * (uniform(state) - 0.5)) if b > 0.0 else math.nan
    if code == 5:  # chisquare(k) = gamma(k/2, 2)
        return 2.0 * _standard_gamma(0.5 * a, state) if a > 0.0 else math.nan
    if code == 6:  # exponential(rate)
        return -math.log(uniform(state)) / a if a > 0.0 else math.nan
    if code == 7:  # gamma(shape, scale)
        return b * _standard_gamma(a, state) if a > 0.0 and b > 0.0 else math.nan
    if code == 8:  # laplace(location, scale)
        if not b > 0.0:
            return math.nan
        magnitude = -b * math.log(uniform(state))
        return a + magnitude if uniform(state) <= 0.5 else a - magnitude
    if code == 9:  # lognormal(mean, sd of the log)
        return math.exp(a + b * _standard_normal(state)) if b >= 0.0 else math.nan
    if code == 10:  # poisson(rate)
        return _poisson(a, state) if a >= 0.0 else math.nan
    if code == 11:  # rayleigh(scale)
        return a * math.sqrt(-2.0 * math.log(uniform(state))) if a > 0.0 else math.nan
    return math.nan


@numba.njit(cache=True)
def sample(code, n_arguments, arguments, truncated, state):
    """One draw: ``arguments`` (4,) holds the parameters then, if ``truncated``, the bounds
    ``lower <= X < upper`` (met by rejection). NaN when parameters or bounds are invalid
    or the bounds hold (almost) none of the mass."""
    a = arguments[0]
    b = arguments[1] if n_arguments > 1 else 0.0
    if not truncated:
        return _untruncated(code, a, b, state)
    lower = arguments[n_arguments]
    upper = arguments[n_arguments + 1]
    if not (lower < upper):
        return math.nan
    for _ in range(MAX_REJECTIONS):
        value = _untruncated(code, a, b, state)
        if value != value:
            return math.nan
        if lower <= value < upper:
            return value
    return math.nan
