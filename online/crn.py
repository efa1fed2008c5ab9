"""Common random numbers keyed by what they decide.

Every random quantity of the online mode is a pure function of its key: (seed, stream, day,
user, session, slot, ...). A draw therefore never depends on how many draws came before it, so
two policies that show different items, or make a user stay longer or come back more often, still
see the same randomness at every (user, day, session, slot) they share: the same click noise,
the same dwell noise, the same leave and return uniforms.

The generator is SplitMix64's finalizer applied to the key words in turn (a counter-based
generator in the style of Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC'11):
vectorized, with the keys as NumPy integer arrays that broadcast together.
"""

from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def _mix(x: np.ndarray) -> np.ndarray:
    """SplitMix64's finalizer of uint64 `x` (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = x + _GOLDEN
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        return z ^ (z >> np.uint64(31))


def keyed_bits(*keys) -> np.ndarray:
    """uint64 hashes of the broadcast integer `keys` (each a scalar or an array)."""
    arrays = np.broadcast_arrays(*[np.asarray(k, dtype=np.int64) for k in keys])
    h = np.zeros(arrays[0].shape, np.uint64)
    for key in arrays:
        h = _mix(h ^ key.astype(np.uint64))
    return h


def uniform(*keys) -> np.ndarray:
    """Uniforms in [0, 1), float64, one per broadcast key."""
    return (keyed_bits(*keys) >> np.uint64(11)).astype(np.float64) * (2.0 ** -53)


def normal(*keys) -> np.ndarray:
    """Standard normals (Box-Muller on two uniforms of the key), one per broadcast key."""
    u1 = uniform(*keys, 1)
    u2 = uniform(*keys, 2)
    return np.sqrt(-2.0 * np.log1p(-u1)) * np.cos(2.0 * np.pi * u2)


def poisson(u: np.ndarray, rate: np.ndarray) -> np.ndarray:
    """Poisson(rate) draws by inversion of uniforms `u` (same shapes): the smallest n with
    P(N <= n) > u. Monotone in `rate` for a fixed `u`, so a higher rate never gives fewer."""
    u, rate = np.broadcast_arrays(np.asarray(u, float), np.asarray(rate, float))
    n = np.zeros(u.shape, np.int64)
    pmf = np.exp(-rate)
    cdf = pmf.copy()
    k = 0
    while True:
        more = (cdf <= u) & (pmf > 0)  # (pmf underflows to 0 only far in the tail)
        if not more.any():
            return n
        k += 1
        pmf = pmf * rate / k
        n = n + more
        cdf = np.where(more, cdf + pmf, cdf)
