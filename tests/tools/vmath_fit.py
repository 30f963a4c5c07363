#!/usr/bin/python3
"""Minimax coefficients for runtime/mc_vmath.h (run by hand; needs mpmath).

Each approximation is a polynomial c_0 + c_1 t + ... in a variable t, fitted
by the Remez exchange algorithm to minimise max |w(t) (g(t) - p(t))| over an
interval, where g and the weight w encode the shape used in C (for example
exp(r) = 1 + r + r^2 p(r) fits p to (e^r - 1 - r) / r^2 with the weight
r^2 / e^r, so that the bound is on the relative error of exp). The
coefficients are then rounded to float and the error of the rounded
polynomial is reported (in exact arithmetic: the float evaluation adds its
own rounding, measured by tests/tools/vmath_exhaustive.c).

    python3 tests/tools/vmath_fit.py            # all fits
    python3 tests/tools/vmath_fit.py erf_large  # one fit
"""
import struct
import sys

from mpmath import mp, mpf, matrix, lu_solve, cos, pi, sqrt
from mpmath import exp, expm1, log, log1p, tanh, erf, erfc

mp.dps = 40


def to_f32(v):
    return struct.unpack("<f", struct.pack("<f", float(v)))[0]


def remez(g, w, a, b, degree, center=0, iters=40, grid=3000):
    """Coefficients of p(t - center), degree `degree`, minimising
    max |w(t) (g(t) - p(t - center))| on [a, b]; returns (coeffs, error)."""
    m = degree + 1
    a, b, center = mpf(a), mpf(b), mpf(center)
    # Chebyshev-distributed grid, avoiding the exact midpoint (t = 0 is often
    # a removable singularity of g).
    ts = [(a + b) / 2 - (b - a) / 2 * cos(pi * (i + mpf(1) / 2) / grid)
          for i in range(grid)]
    ts = [t if t != 0 and t != center else t + (b - a) * mpf(10) ** -20
          for t in [a] + ts + [b]]
    gs = [g(t) for t in ts]
    ws = [w(t) for t in ts]
    # initial reference: spread over the grid, skipping points where the
    # weight vanishes (they carry no error and make the system singular)
    wmax = max(ws)
    usable = [t for t, wv in zip(ts, ws) if wv > wmax * mpf(10) ** -12]
    ref = [usable[int(round(i * (len(usable) - 1) / m))] for i in range(m + 1)]
    best = None
    for _ in range(iters):
        A = matrix(m + 1, m + 1)
        rhs = matrix(m + 1, 1)
        for i, t in enumerate(ref):
            s = t - center
            for k in range(m):
                A[i, k] = w(t) * s ** k
            A[i, m] = (-1) ** i
            rhs[i] = w(t) * g(t)
        sol = lu_solve(A, rhs)
        c = [sol[k] for k in range(m)]
        err = []
        for t, gv, wv in zip(ts, gs, ws):
            s, pv = t - center, mpf(0)
            for ck in reversed(c):
                pv = pv * s + ck
            err.append(wv * (gv - pv))
        # one extremum per run of constant sign
        ext = []
        for t, e in zip(ts, err):
            if ext and (e > 0) == (ext[-1][1] > 0):
                if abs(e) > abs(ext[-1][1]):
                    ext[-1] = (t, e)
            elif e != 0:
                ext.append((t, e))
        while len(ext) > m + 1:
            if len(ext) == m + 2:
                ext.pop(0 if abs(ext[0][1]) < abs(ext[-1][1]) else -1)
                continue
            i = min(range(len(ext)), key=lambda j: abs(ext[j][1]))
            if i == 0 or i == len(ext) - 1:
                ext.pop(i)
            else:
                keep = ext[i - 1] if abs(ext[i - 1][1]) > abs(ext[i + 1][1]) \
                    else ext[i + 1]
                ext[i - 1:i + 2] = [keep]
        emax = max(abs(e) for e in err)
        if best is None or emax < best[1]:
            best = (c, emax)
        if len(ext) < m + 1:
            break
        ref = [t for t, _ in ext]
        if emax <= abs(sol[m]) * (1 + mpf(10) ** -4):
            break
    return best


def remez_rounded(g, w, a, b, degree, center=0):
    """Like remez, but the coefficients come out as floats: c_0 is rounded,
    c_1.. refitted to the remaining error, c_1 rounded, and so on."""
    center = mpf(center)
    fixed = []
    for k in range(degree + 1):
        def gk(t, k=k):
            s = t - center
            return (g(t) - sum(f * s ** j for j, f in enumerate(fixed))) \
                / s ** k
        c, _ = remez(gk, lambda t, k=k: abs(w(t) * (t - center) ** k), a, b,
                     degree - k, center)
        fixed.append(mpf(to_f32(c[0])))
    return fixed


def rounded_error(g, w, a, b, coeffs, center=0, n=4000):
    """max |w (g - p)| with the coefficients rounded to float."""
    cf = [mpf(to_f32(c)) for c in coeffs]
    worst = mpf(0)
    for i in range(n + 1):
        t = mpf(a) + (mpf(b) - mpf(a)) * i / n
        if t == 0:
            continue
        s, pv = t - center, mpf(0)
        for ck in reversed(cf):
            pv = pv * s + ck
        worst = max(worst, abs(w(t) * (g(t) - pv)))
    return worst


LN2_HALF = log(2) / 2 * mpf("1.002")
SQRT_HALF = sqrt(mpf(1) / 2)

# name: (g, w, a, b, degree, center, what the error bound is relative to)
FITS = {
    # exp(r) = 1 + r + r^2 p(r), |r| <= ln2/2 (a little wider for rounding)
    "exp": (lambda r: (exp(r) - 1 - r) / r ** 2, lambda r: r ** 2 / exp(r),
            -LN2_HALF, LN2_HALF, 4, 0),
    # expm1(r) = r + r^2/2 + r^3 p(r)
    "expm1": (lambda r: (expm1(r) - r - r ** 2 / 2) / r ** 3,
              lambda r: r ** 3 / expm1(r), -LN2_HALF, LN2_HALF, 3, 0),
    # log(1 + f) = f - f^2/2 + f^3 p(f), sqrt(1/2) <= 1 + f < sqrt(2)
    "log": (lambda f: (log1p(f) - f + f ** 2 / 2) / f ** 3,
            lambda f: f ** 3 / log1p(f), SQRT_HALF - 1, sqrt(2) - 1, 7, 0),
    # tanh(a) = a + a^3 p(a^2), a < 0.625: in z = a^2
    "tanh": (lambda z: (tanh(sqrt(z)) - sqrt(z)) / (z * sqrt(z)),
             lambda z: z * sqrt(z) / tanh(sqrt(z)), 0, mpf("0.625") ** 2, 4,
             0),
    # erf(a) = a + a p(a^2), a < 1: in z = a^2
    "erf_small": (lambda z: (erf(sqrt(z)) - sqrt(z)) / sqrt(z),
                  lambda z: sqrt(z) / erf(sqrt(z)), 0, 1, 6, 0),
    # erf(a) = 1 - exp(p(a - 1)), 1 <= a <= 3.9375: p ~ log(erfc(a)), the
    # bound on |erfc - exp(p)| / erf (erf(a) rounds to 1 from 3.9192)
    "erf_large": (lambda a: log(erfc(a)), lambda a: erfc(a) / erf(a),
                  1, mpf("3.9375"), 6, 1),
}


def main(names):
    for name in names:
        g, w, a, b, degree, center = FITS[name]
        _, e = remez(g, w, a, b, degree, center)
        c = remez_rounded(g, w, a, b, degree, center)
        er = rounded_error(g, w, a, b, c, center)
        print(f"{name}: degree {degree} on [{float(a):.6g}, {float(b):.6g}]"
              f" centre {float(center)}: minimax {float(e) * 2 ** 24:.3g}"
              f" x 2^-24, with float coefficients"
              f" {float(er) * 2 ** 24:.3g} x 2^-24")
        for k, ck in enumerate(c):
            m, ex = to_f32(ck).hex().split("p")
            print(f"  c{k} = {m.rstrip('0').rstrip('.')}p{ex}f"
                  f"  /* {to_f32(ck):.9g} */")


if __name__ == "__main__":
    main(sys.argv[1:] or list(FITS))
