#!/usr/bin/env python3
"""Fit the polynomial used by the CPU GELU-erf kernel (backends/cpu/glu_math.h).

GELU-erf needs Phi(x) = 0.5*erfc(-x/sqrt(2)) without the cancellation of 1 + erf(x)
for negative x.  We write erfc(s/sqrt(2)) = exp(-s^2/2) * F(s) for s >= 0, where
F is smooth and bounded, and fit F(s) = t * P(t) with t = 1 / (1 + p*s), so the fit
interval is t in (0, 1].  Least squares on Chebyshev nodes with relative weights,
then iteratively reweighted towards the minimax solution.  Run: python3 tools/fit_gelu_erfc.py
(needs numpy and mpmath; it is a development tool, not a build step).
"""
import numpy as np
import mpmath as mp

mp.mp.dps = 40
S_MAX = 14.5  # beyond this exp(-s^2/2) underflows fp32 entirely


def F(s):
    return mp.erfc(s / mp.sqrt(2)) * mp.exp(s * s / 2)


def fit(p, deg, n=4000):
    t_lo = 1.0 / (1.0 + p * S_MAX)
    k = np.arange(n)
    t = t_lo + (1 - t_lo) * 0.5 * (1 - np.cos(np.pi * (k + 0.5) / n))
    s = (1.0 / t - 1.0) / p
    y = np.array([float(F(mp.mpf(si)) / ti) for si, ti in zip(s, t)])  # P(t) target
    w = np.ones(n)
    for _ in range(30):
        A = np.vander(t, deg + 1, increasing=True) * (w / y)[:, None]
        c, *_ = np.linalg.lstsq(A, w, rcond=None)
        r = np.abs(np.polyval(c[::-1], t) / y - 1)
        w = w * (1 + 2 * r / r.max())
    return c, r.max()


def eval_f32(c, p, s):
    s = np.float32(s)
    t = np.float32(1) / (np.float32(1) + np.float32(p) * s)
    acc = np.float32(c[-1])
    for ci in c[-2::-1]:
        acc = np.float32(acc * t + np.float32(ci))
    return np.float32(acc * t)


if __name__ == "__main__":
    best = None
    for p in (0.4, 0.5, 0.6, 0.7):
        for deg in (9, 10, 11, 12):
            c, err = fit(p, deg)
            ss = np.linspace(0, S_MAX, 3001)
            e32 = max(abs(float(eval_f32(c, p, si)) / float(F(mp.mpf(float(np.float32(si))))) - 1) for si in ss)
            print(f"p={p} deg={deg} fit_err={err:.3e} fp32_err={e32:.3e}")
            if best is None or e32 < best[0]:
                best = (e32, p, deg, c)
    e32, p, deg, c = best
    print(f"# best: p={p} deg={deg} max rel err in fp32 evaluation {e32:.3e}")
    for ci in c:
        print(f"  {float(np.float32(ci)):.9g}f,")
