#!/usr/bin/env python3
"""Fit the exp polynomial of the CPU's 16-bit-output logistic path
(v_exp_negz16 in backends/cpu/cpu_kernels_impl.h).

That path needs exp(-s) on the reduced interval |s| <= ln(2)/2 only to
about 2^-18 relative (its reciprocal is good to 2^-14; see docs/numerics.md),
so a degree-4 polynomial with the constant term fixed at 1 is enough:
p(s) = 1 + s*(c1 + s*(c2 + s*(c3 + s*c4))), four fused multiply-adds.
Least squares on Chebyshev nodes with relative weights, then reweighted
towards the minimax solution (Lawson). The printout also evaluates the fp32
coefficients in fp32 Horner form, as the kernel does.
Run: python3 tools/fit_exp16.py (needs numpy; a development tool, not a build step).
"""
import numpy as np

# a little past ln(2)/2: the reduction's k is rounded from z*log2(e) in fp32
L = np.log(2.0) / 2 * 1.001
s = np.cos(np.linspace(0.0, np.pi, 8001)) * L
f = np.exp(-s)
A = np.stack([s**k for k in range(1, 5)], 1)
w = np.ones_like(s)
for _ in range(400):
    W = np.sqrt(w) / f
    c, *_ = np.linalg.lstsq(A * W[:, None], (f - 1) * W, rcond=None)
    e = (1 + A @ c) / f - 1
    w = w * np.abs(e)
    w /= w.sum()
print("float64 coefficients c1..c4:", ", ".join("%.17g" % v for v in c))
print("max relative error (float64 evaluation): 2^%.2f" % np.log2(np.abs(e).max()))

c32 = c.astype(np.float32)
s32 = np.linspace(-L, L, 2000001).astype(np.float32)
q = np.full_like(s32, c32[3])
for ck in (c32[2], c32[1], c32[0], np.float32(1.0)):
    q = (q.astype(np.float64) * s32 + ck).astype(np.float32)  # one rounding, as an fma
err = np.abs(q / np.exp(-s32.astype(np.float64)) - 1).max()
print("fp32 coefficients: " + ", ".join("%.9gf" % v for v in c32))
print("max relative error (fp32 Horner with fma): 2^%.2f" % np.log2(err))
