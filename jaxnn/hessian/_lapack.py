"""LAPACK's symmetric eigensolvers, called on a NumPy array in place (CPU only).

Plumbing for :func:`jaxnn.hessian.spectrum`: the two-stage tridiagonal reduction from the
OpenBLAS that SciPy ships (through ctypes, as SciPy wraps none of its stages) and
``scipy.linalg.eigh`` otherwise. Why these routines, and how they compare with the
alternatives, is in ``benchmarks/README.md``.
"""

from __future__ import annotations

import ctypes
import functools
import math
from pathlib import Path

import numpy as np

__all__ = ["eigh_host"]

_BAND = 64  # the band width of the two-stage reduction (LAPACK's own default, KD = 64)


@functools.cache
def _two_stage_lapack() -> dict | None:
    """LAPACK's two-stage tridiagonal reduction from the OpenBLAS that SciPy ships.

    SciPy (a dependency of JAX) bundles OpenBLAS with the whole of LAPACK, including the
    two-stage reduction of a symmetric matrix to tridiagonal form: dense → band of width KD
    with BLAS-3 (``?sytrd_sy2sb``, both cores), then band → tridiagonal by bulge chasing
    (``?sytrd_sb2st``), then the eigenvalues of the tridiagonal (``?sterf``), instead of
    the one-stage reduction of ``jnp.linalg.eigvalsh``, ``numpy.linalg`` and
    ``scipy.linalg.eigh``, and without LAPACK's driver ``?syevd_2stage`` (the comparison
    is in ``benchmarks/README.md``). SciPy wraps none of them, so they are called
    through ctypes; None when the library or its symbols are not there (another platform or
    build), and the caller falls back to ``scipy.linalg.eigh``.
    """
    try:
        import scipy
        from scipy import __config__ as config
    except ImportError:
        return None
    blas = getattr(config, "CONFIG", {}).get("Build Dependencies", {}).get("blas", {})
    if blas.get("name") != "scipy-openblas" or str(blas.get("has ilp64")).lower() != "false":
        return None  # the calls below pass 32-bit LAPACK integers
    for path in sorted(Path(scipy.__file__).parent.parent.glob("scipy.libs/libscipy_openblas*")):
        try:
            lib = ctypes.CDLL(str(path))
            routines = {
                np.dtype(dtype): tuple(
                    getattr(lib, f"scipy_{c}{name}_")
                    for name in ("sytrd_sy2sb", "sytrd_sb2st", "sterf", "lansy")
                )
                for c, dtype in (("s", np.float32), ("d", np.float64))
            }
        except (OSError, AttributeError):
            continue
        for dtype, (_, _, _, lansy) in routines.items():
            lansy.restype = ctypes.c_float if dtype == np.float32 else ctypes.c_double
        return routines
    return None


def _two_stage_eigvalsh(a: np.ndarray, routines: tuple) -> np.ndarray:
    """Eigenvalues of the symmetric Fortran-ordered ``a`` (lower triangle; destroyed), by
    ``?sytrd_sy2sb`` + ``?sytrd_sb2st`` + ``?sterf``, with ``?syevd``'s scaling of matrices
    whose largest entry is near underflow or overflow."""
    sy2sb, sb2st, sterf, lansy = routines
    n, dtype, kd = a.shape[0], a.dtype, min(_BAND, max(a.shape[0] - 1, 1))
    info = ctypes.c_int()

    def i(v):
        return ctypes.byref(ctypes.c_int(v))

    def c(text):
        return ctypes.c_char_p(text.encode())

    def ptr(arr):
        return arr.ctypes.data_as(ctypes.c_void_p)

    one = ctypes.c_size_t(1)  # the hidden length of each Fortran CHARACTER argument
    anrm = lansy(c("M"), c("L"), i(n), ptr(a), i(n), ptr(np.zeros(1, dtype)), one, one)
    small = np.finfo(dtype).tiny / np.finfo(dtype).eps
    rmin, rmax = math.sqrt(small), math.sqrt(1.0 / small)
    sigma = rmin / anrm if 0 < anrm < rmin else rmax / anrm if anrm > rmax else 1.0
    if sigma != 1.0:
        a *= dtype.type(sigma)
    band = np.zeros((kd + 1, n), dtype, order="F")
    tau, query = np.zeros(n, dtype), np.zeros(2, dtype)
    sy2sb(
        c("L"),
        i(n),
        i(kd),
        ptr(a),
        i(n),
        ptr(band),
        i(kd + 1),
        ptr(tau),
        ptr(query),
        i(-1),
        ctypes.byref(info),
        one,
    )
    work = np.zeros(max(int(query[0]), 1), dtype)
    sy2sb(
        c("L"),
        i(n),
        i(kd),
        ptr(a),
        i(n),
        ptr(band),
        i(kd + 1),
        ptr(tau),
        ptr(work),
        i(work.size),
        ctypes.byref(info),
        one,
    )
    if info.value != 0:
        raise np.linalg.LinAlgError(f"LAPACK sytrd_sy2sb failed (info={info.value})")
    d, e = np.zeros(n, dtype), np.zeros(n, dtype)
    hous_query, work_query = np.zeros(2, dtype), np.zeros(2, dtype)
    args = (c("Y"), c("N"), c("L"), i(n), i(kd), ptr(band), i(kd + 1), ptr(d), ptr(e))
    sb2st(*args, ptr(hous_query), i(-1), ptr(work_query), i(-1), ctypes.byref(info), one, one, one)
    hous, work = (np.zeros(max(int(q[0]), 1), dtype) for q in (hous_query, work_query))
    sb2st(
        *args, ptr(hous), i(hous.size), ptr(work), i(work.size), ctypes.byref(info), one, one, one
    )
    if info.value != 0:
        raise np.linalg.LinAlgError(f"LAPACK sytrd_sb2st failed (info={info.value})")
    sterf(i(n), ptr(d), ptr(e), ctypes.byref(info))
    if info.value != 0:
        raise np.linalg.LinAlgError(f"LAPACK sterf did not converge (info={info.value})")
    return d / dtype.type(sigma) if sigma != 1.0 else d


def eigh_host(a: np.ndarray, vectors: bool) -> tuple[np.ndarray, np.ndarray | None]:
    """Eigenvalues (ascending) and optionally eigenvectors of the symmetric Fortran-ordered
    ``a``, in place (``a`` is destroyed), reading its lower triangle.

    Eigenvalues only: the two-stage reduction (see :func:`_two_stage_lapack`), extra memory
    O(P·KD). With vectors: ``?syevd`` (divide and conquer; against MRRR and
    ``jnp.linalg.eigh`` in ``benchmarks/README.md``); the vectors overwrite ``a`` and the
    workspace is 2P², so the peak is about 3P².
    """
    import scipy.linalg

    routines = None if vectors else _two_stage_lapack()
    if routines is not None and a.dtype in routines and a.shape[0] > 1:
        return _two_stage_eigvalsh(a, routines[a.dtype]), None
    out = scipy.linalg.eigh(
        a, lower=True, eigvals_only=not vectors, overwrite_a=True, check_finite=False, driver="evd"
    )
    return (out, None) if not vectors else out
