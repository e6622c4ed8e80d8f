#!/usr/bin/env python3
"""GPU benchmark: swiglu's CUDA backend against PyTorch, in one process.

For each shape it times, with CUDA events on one stream (CUDA graphs of 20
launches for decode sizes, T <= 64, for every contestant alike):
  copy      a device-to-device copy of the same bytes (the ceiling)
  swiglu    this library, called through ctypes on torch's stream
  eager     PyTorch eager: F.silu(g) * u / its autograd backward /
            silu-and-mul then per-group FP8 quant (two kernels; h in bf16,
            which the library matches with SWIGLU_QUANT_ROUND_H: the "/rh" rows)
  compile   torch.compile of the same functions
and prints ms, GB/s and GB/s / copy GB/s. Bytes: inputs read once, outputs
written once (forward 3*T*H*2, backward 5*T*H*2, FP8 group-128 quant
2*T*H*2 + T*H + 4*T*H/128).

    python3 bench/torch_peers.py --lib build/lib/libswiglu.so [--json out.jsonl] [--quick]
    python3 bench/torch_peers.py --lib ... --linear [TxDxH,...]   (the GEMM-fused ops)
"""
import argparse
import ctypes as C
import json
import statistics
import sys

import torch
import torch.nn.functional as F


class Device(C.Structure):
    _fields_ = [("device_type", C.c_int32), ("device_id", C.c_int32)]


class DType(C.Structure):
    _fields_ = [("code", C.c_uint8), ("bits", C.c_uint8), ("lanes", C.c_uint16)]


class Tensor(C.Structure):
    _fields_ = [("data", C.c_void_p), ("device", Device), ("ndim", C.c_int32), ("dtype", DType),
                ("shape", C.POINTER(C.c_int64)), ("strides", C.POINTER(C.c_int64)),
                ("byte_offset", C.c_uint64)]


class GluDesc(C.Structure):
    _fields_ = [("activation", C.c_int), ("layout", C.c_int), ("alpha", C.c_float), ("limit", C.c_float)]


class QuantDesc(C.Structure):
    _fields_ = [("format", C.c_int), ("granularity", C.c_int), ("group_size", C.c_int32),
                ("scale_encoding", C.c_int), ("scale_layout", C.c_int), ("amax_floor", C.c_float),
                ("flags", C.c_uint32)]


class QuantArgs(C.Structure):
    _fields_ = [(n, C.POINTER(Tensor)) for n in
                ("x", "up", "q", "scales", "tensor_scale", "row_weight", "expert_counts")]


class LinearArgs(C.Structure):
    _fields_ = [(n, C.POINTER(Tensor)) for n in ("x", "w", "w_up", "bias", "bias_up", "h", "preact")] + \
               [("workspace", C.c_void_p), ("workspace_bytes", C.c_size_t)]


class DownArgs(C.Structure):
    _fields_ = [("x", C.POINTER(Tensor)), ("up", C.POINTER(Tensor)), ("w", C.POINTER(Tensor)),
                ("expert_offsets", C.POINTER(C.c_int64)), ("num_experts", C.c_int32),
                ("y", C.POINTER(Tensor)), ("workspace", C.c_void_p), ("workspace_bytes", C.c_size_t)]


DT = {torch.bfloat16: (4, 16), torch.float16: (2, 16), torch.float32: (2, 32),
      torch.float8_e4m3fn: (10, 8), torch.int32: (0, 32), torch.uint8: (1, 8)}
_keep = []


def desc(t):
    shape = (C.c_int64 * t.dim())(*t.shape)
    strides = (C.c_int64 * t.dim())(*t.stride())
    _keep.extend([shape, strides])
    code, bits = DT[t.dtype]
    d = Tensor(t.data_ptr(), Device(2, t.device.index or 0), t.dim(), DType(code, bits, 1), shape, strides, 0)
    _keep.append(d)
    return d


class Swiglu:
    def __init__(self, path):
        self.lib = C.CDLL(path)
        self.lib.swiglu_last_create_error.restype = C.c_char_p
        self.lib.swiglu_context_last_error.restype = C.c_char_p
        self.lib.swiglu_context_device_name.restype = C.c_char_p
        self.ctx = C.c_void_p()
        st = self.lib.swiglu_context_create(C.byref(self.ctx), b"cuda", 0)
        if st:
            raise RuntimeError("swiglu cuda context: " + self.lib.swiglu_last_create_error().decode())
        self.desc = GluDesc()
        import os  # SWIGLU_BENCH_ACT: time another activation of ours (experiments only)
        self.lib.swiglu_glu_desc_init(C.byref(self.desc), int(os.environ.get("SWIGLU_BENCH_ACT", "0")), 1)
        self.name = self.lib.swiglu_context_device_name(self.ctx).decode()

    def check(self, st):
        if st:
            raise RuntimeError(self.lib.swiglu_context_last_error(self.ctx).decode())

    def stream(self):
        self.lib.swiglu_context_set_stream(self.ctx, C.c_void_p(torch.cuda.current_stream().cuda_stream))

    def forward(self, x, h):
        dx, dh = desc(x), desc(h)
        return lambda: (self.stream(), self.check(self.lib.swiglu_glu_forward(self.ctx, C.byref(self.desc), C.byref(dx), None, C.byref(dh))))

    def backward(self, dh, x, dx):
        a, b, c = desc(dh), desc(x), desc(dx)
        return lambda: (self.stream(), self.check(self.lib.swiglu_glu_backward(
            self.ctx, C.byref(self.desc), C.byref(a), C.byref(b), None, C.byref(c), None, None, 0)))

    def quant(self, x, q, s, layout, packed, round_h=False):
        qd = QuantDesc()
        self.lib.swiglu_quant_desc_init(C.byref(qd), 0, 2, 128)
        qd.scale_layout = layout
        if packed:
            qd.scale_encoding = 2
        if round_h:
            qd.flags |= 1  # SWIGLU_QUANT_ROUND_H: h rounded to bf16 first, as the two-kernel peers do
        a = QuantArgs(C.pointer(desc(x)), None, C.pointer(desc(q)), C.pointer(desc(s)), None, None, None)
        _keep.extend([qd, a])
        return lambda: (self.stream(), self.check(self.lib.swiglu_glu_quant(self.ctx, C.byref(self.desc), C.byref(qd), C.byref(a))))


    def _with_workspace(self, args, query, run):
        n = C.c_size_t()
        self.check(query(self.ctx, C.byref(self.desc), C.byref(args), C.byref(n)))
        ws = torch.empty(max(n.value, 1), device="cuda", dtype=torch.uint8)
        args.workspace, args.workspace_bytes = ws.data_ptr(), n.value
        _keep.extend([args, ws])
        return lambda: (self.stream(), self.check(run(self.ctx, C.byref(self.desc), C.byref(args))))

    def glu_linear(self, x, w, h):
        a = LinearArgs(C.pointer(desc(x)), C.pointer(desc(w)), None, None, None, C.pointer(desc(h)), None, None, 0)
        return self._with_workspace(a, self.lib.swiglu_glu_linear_forward_workspace_size,
                                    self.lib.swiglu_glu_linear_forward)

    def down_proj(self, pre, wd, y):
        a = DownArgs(C.pointer(desc(pre)), None, C.pointer(desc(wd)), None, 0, C.pointer(desc(y)), None, 0)
        return self._with_workspace(a, self.lib.swiglu_down_proj_forward_workspace_size,
                                    self.lib.swiglu_down_proj_forward)


def time_ms(fn, graph):
    """Median ms of fn: events around single calls, or around replays of a
    CUDA graph of 20 calls (divided by 20)."""
    for _ in range(3):
        fn()
    torch.cuda.synchronize()
    if graph:
        s = torch.cuda.Stream()
        s.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(s):
            for _ in range(3):
                fn()
        torch.cuda.current_stream().wait_stream(s)
        g = torch.cuda.CUDAGraph()
        with torch.cuda.graph(g):
            for _ in range(20):
                fn()
        run, div = g.replay, 20
    else:
        run, div = fn, 1
    times = []
    for _ in range(30):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        run()
        b.record()
        b.synchronize()
        times.append(a.elapsed_time(b) / div)
    return statistics.median(times)


def fp8_group_quant(h, T, H):
    hf = h.float().view(T, H // 128, 128)
    amax = hf.abs().amax(-1, keepdim=True).clamp(min=1e-10)
    scale = amax / 448.0
    q = (hf / scale).clamp(-448.0, 448.0).to(torch.float8_e4m3fn)
    return q.view(T, H), scale.view(T, H // 128)


def linear_main(sw, shapes, out):
    """The GEMM-fused forward ops (composed from cuBLASLt on CUDA) against
    PyTorch: X @ W^T over [2H, D] (the GEMM ceiling) and the unfused layer
    silu(X Wg^T) * (X Wu^T); the down projection against h @ Wd^T and the
    unfused silu-and-mul then matmul. bf16, ratios to the plain GEMM."""
    dev = torch.device("cuda")
    print(f"{'op':<10} {'T':>6} {'D':>6} {'H':>6} {'contestant':<14} {'ms':>9} {'TFLOP/s':>8} {'of gemm':>7}")
    for shp in shapes.split(","):
        T, D, H = (int(v) for v in shp.split("x"))
        x = torch.randn(T, D, device=dev).to(torch.bfloat16)
        w = (torch.randn(2 * H, D, device=dev) / D ** 0.5).to(torch.bfloat16)
        h = torch.empty(T, H, device=dev, dtype=torch.bfloat16)
        pre = (torch.randn(T, 2 * H, device=dev) * 2).to(torch.bfloat16)
        wd = (torch.randn(D, H, device=dev) / H ** 0.5).to(torch.bfloat16)
        y = torch.empty(T, D, device=dev, dtype=torch.bfloat16)
        hh = torch.empty(T, H, device=dev, dtype=torch.bfloat16)

        def layer():
            z = x @ w.t()
            return F.silu(z[:, :H]) * z[:, H:]
        tests = {
            "glu-linear": (2.0 * T * D * 2 * H, [
                ("torch X@W^T", lambda: x @ w.t()),
                ("swiglu", sw.glu_linear(x, w, h)),
                ("torch layer", layer)]),
            "down-proj": (2.0 * T * H * D, [
                ("torch h@Wd^T", lambda: hh @ wd.t()),
                ("swiglu", sw.down_proj(pre, wd, y)),
                ("torch layer", lambda: (F.silu(pre[:, :H]) * pre[:, H:]) @ wd.t())]),
        }
        for op, (flops, contestants) in tests.items():
            gemm_ms = None
            for name, fn in contestants:
                ms = time_ms(fn, T <= 64)
                gemm_ms = gemm_ms or ms
                tf = flops / ms / 1e9
                print(f"{op:<10} {T:>6} {D:>6} {H:>6} {name:<14} {ms:>9.4f} {tf:>8.1f} {gemm_ms / ms:>7.3f}")
                if out:
                    out.write(json.dumps(dict(op=op, T=T, D=D, H=H, contestant=name, ms=ms, tflops=tf,
                                              ratio_to_gemm=gemm_ms / ms, device=sw.name)) + "\n")
                    out.flush()
        sys.stdout.flush()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", default="build/lib/libswiglu.so")
    ap.add_argument("--json")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--H", default="1024,4096,11008,14336")
    ap.add_argument("--T", default="1,64,4096,8192,32768")
    ap.add_argument("--linear", nargs="?", const="256x2048x5632,4096x4096x14336,16x4096x14336",
                    help="time the GEMM-fused forward ops on TxDxH shapes instead")
    args = ap.parse_args()
    sw = Swiglu(args.lib)
    if args.linear:
        print(f"device: {sw.name}; torch {torch.__version__}")
        linear_main(sw, args.linear, open(args.json, "w") if args.json else None)
        return
    torch.manual_seed(0)
    dev = torch.device("cuda")
    Hs = [int(v) for v in args.H.split(",")]
    Ts = [int(v) for v in args.T.split(",")] if not args.quick else [1, 8192]
    out = open(args.json, "w") if args.json else None
    print(f"device: {sw.name}; torch {torch.__version__}")
    print(f"{'op':<5} {'T':>6} {'H':>6} {'contestant':<16} {'ms':>9} {'GB/s':>8} {'ratio':>6}")
    # every shape is compiled for itself (dynamic=False); without a larger
    # cache dynamo would silently fall back to eager after 8 shapes
    torch._dynamo.config.cache_size_limit = 1024
    torch._dynamo.config.accumulated_cache_size_limit = 4096
    fwd_c = torch.compile(lambda x, H: F.silu(x[:, :H]) * x[:, H:], dynamic=False)

    def bwd_math(x, dh, H):
        g, u = x[:, :H].float(), x[:, H:].float()
        s = torch.sigmoid(g)
        d = dh.float()
        return torch.cat([(d * u * s * (1 + g * (1 - s))).to(x.dtype), (d * g * s).to(x.dtype)], -1)
    bwd_c = torch.compile(bwd_math, dynamic=False)
    quant_c = torch.compile(lambda x, T, H: fp8_group_quant(F.silu(x[:, :H]) * x[:, H:], T, H), dynamic=False)
    for H in Hs:
        for T in Ts:
            if T * H > 32768 * 14336:
                continue
            n = T * H
            graph = T <= 64
            x = (torch.randn(T, 2 * H, device=dev) * 3).to(torch.bfloat16)
            h = torch.empty(T, H, device=dev, dtype=torch.bfloat16)
            dh = torch.randn(T, H, device=dev).to(torch.bfloat16)
            dx = torch.empty_like(x)
            q = torch.empty(T, H, device=dev, dtype=torch.float8_e4m3fn)
            groups, Tp = H // 128, (T + 3) // 4 * 4
            s_row = torch.empty(T, groups, device=dev, dtype=torch.float32)
            s_tma = torch.empty(groups, Tp, device=dev, dtype=torch.float32)
            s_pk = torch.empty((groups + 3) // 4, Tp, device=dev, dtype=torch.int32)
            xr = x.clone().requires_grad_(True)
            yr = F.silu(xr[:, :H]) * xr[:, H:]
            ops = {
                "fwd": (3 * n * 2, [
                    ("swiglu", sw.forward(x, h)),
                    ("eager", lambda: F.silu(x[:, :H]) * x[:, H:]),
                    ("compile", lambda: fwd_c(x, H))]),
                "bwd": (5 * n * 2, [
                    ("swiglu", sw.backward(dh, x, dx)),
                    ("eager", lambda: torch.autograd.grad(yr, xr, dh, retain_graph=True)),
                    ("compile", lambda: bwd_c(x, dh, H))]),
                "fp8q": (2 * n * 2 + n + 4 * n // 128, [
                    ("swiglu-row", sw.quant(x, q, s_row, 0, False)),
                    ("swiglu-tma", sw.quant(x, q, s_tma, 2, False)),
                    ("swiglu-ue8m0", sw.quant(x, q, s_pk, 2, True)),
                    ("swiglu-row/rh", sw.quant(x, q, s_row, 0, False, True)),
                    ("swiglu-tma/rh", sw.quant(x, q, s_tma, 2, False, True)),
                    ("swiglu-ue8m0/rh", sw.quant(x, q, s_pk, 2, True, True)),
                    ("eager", lambda: fp8_group_quant(F.silu(x[:, :H]) * x[:, H:], T, H)),
                    ("compile", lambda: quant_c(x, T, H))]),
            }
            for op, (nbytes, contestants) in ops.items():
                src = torch.empty(nbytes // 2, device=dev, dtype=torch.uint8)
                dst = torch.empty_like(src)
                copy_ms = time_ms(lambda: dst.copy_(src), graph)
                copy_gbps = nbytes / copy_ms / 1e6
                print(f"{op:<5} {T:>6} {H:>6} {'copy':<16} {copy_ms:>9.4f} {copy_gbps:>8.1f} {1.0:>6.3f}")
                for name, fn in contestants:
                    try:
                        ms = time_ms(fn, graph and not (op == "bwd" and name == "eager"))
                    except Exception as e:  # a peer that cannot run here is reported, not hidden
                        print(f"{op:<5} {T:>6} {H:>6} {name:<16} failed: {type(e).__name__}: {str(e)[:80]}")
                        continue
                    gbps = nbytes / ms / 1e6
                    print(f"{op:<5} {T:>6} {H:>6} {name:<16} {ms:>9.4f} {gbps:>8.1f} {gbps / copy_gbps:>6.3f}")
                    if out:
                        out.write(json.dumps(dict(op=op, T=T, H=H, contestant=name, ms=ms, gbps=gbps,
                                                  copy_gbps=copy_gbps, ratio=gbps / copy_gbps,
                                                  graph=graph, device=sw.name)) + "\n")
                        out.flush()
                del src, dst
            sys.stdout.flush()


if __name__ == "__main__":
    main()
