"""Emulate on CPU the part of CUDA autocast that differs from CPU autocast: its fp32 and promote lists.

CUDA autocast runs a list of ops in fp32 whatever their input dtype ("CUDA Ops that can autocast to
float32" in torch's AMP docs, "Automatic Mixed Precision package - torch.amp"): `sum`, `softmax`,
`exp`, `layer_norm`, `pow`, ... and runs another list at the widest input dtype ("CUDA Ops that
promote to the widest input type": `addcmul`, `index_put`, `scatter_add`, ...). CPU autocast keeps
most of them (notably `sum`) in the input dtype, which is why a bf16 CPU run never reproduced the
first-step crash seen on an H200. Inside `cuda_autocast_fp32_ops()`, while CPU autocast is enabled,
the fp32 ops upcast low-precision float inputs to fp32 and the promote ops cast their float inputs
to the widest one, as on CUDA.

Where the decisions come from, so they cannot lag the installed torch: every torch build (the CPU-only
one too) carries the CUDA autocast kernels, and a fake CUDA tensor (FakeTensorMode: shapes and dtypes,
no device, no compute) runs through them. So the first time a function that CUDA autocast handles is
called with a given set of input dtypes, the emulation asks torch itself what CUDA autocast makes of
that call (`cuda_autocast_dtype`) and caches the answer; which functions CUDA autocast handles is the
dispatcher's list of AutocastCUDA kernels (`cuda_autocast_ops`) plus the docs' names for them
(`DOCUMENTED`). Where a fake run is impossible (an op the fake mode cannot trace without a CUDA build),
the documented lists decide. `tests/model/test_cuda_autocast.py` checks that every registered kernel
is named by the docs' lists or by `UNDOCUMENTED`, and that fake CUDA autocast and the docs agree, so a
torch upgrade that changes the lists fails a test instead of silently changing what is emulated.

Blind spots (what this emulation does NOT make the CPU do as CUDA does):
- only Python-level calls are seen (a TorchFunctionMode): an op called from C++ inside another op
  (the internals of `scaled_dot_product_attention`, `nn.LSTM`, `cross_entropy`'s own log_softmax,
  ...) runs with CPU autocast's choice;
- the lower-precision list is CPU autocast's, not CUDA's (CPU casts a different set of ops to bf16,
  and fp16 autocast does not exist on CPU, so fp16 + GradScaler is not emulated at all);
- numerics: CUDA's bf16 kernels (tensor-core accumulation, flash / memory-efficient attention) round
  differently; a test here proves dtypes and control flow, not bit-identical GPU numbers;
- the CUDA-only inference path: CUDA graphs and the static KV cache's device behaviour (the static
  cache itself runs on CPU and is tested there, forced);
- ops called with an explicit `dtype=` are left alone, as CUDA autocast does; in-place and `out=`
  variants are not autocast on either device.
So a test that uses it is "with CUDA autocast's fp32/promote lists emulated", not "on CUDA".
"""

from __future__ import annotations

import contextlib
import functools

import torch
from torch.overrides import TorchFunctionMode

# The lists as the torch.amp docs name them (Python names; `python_name` maps the dispatcher's aten
# names to these).
DOCUMENTED = {
    "lower_precision_fp": {
        "__matmul__",
        "addbmm",
        "addmm",
        "addmv",
        "addr",
        "baddbmm",
        "bmm",
        "chain_matmul",
        "multi_dot",
        "conv1d",
        "conv2d",
        "conv3d",
        "conv_transpose1d",
        "conv_transpose2d",
        "conv_transpose3d",
        "GRUCell",
        "linear",
        "LSTMCell",
        "matmul",
        "mm",
        "mv",
        "prelu",
        "RNNCell",
    },
    "fp32": {
        "__pow__",
        "__rdiv__",
        "__rpow__",
        "__rtruediv__",
        "acos",
        "asin",
        "binary_cross_entropy_with_logits",
        "cosh",
        "cosine_embedding_loss",
        "cdist",
        "cosine_similarity",
        "cross_entropy",
        "cumprod",
        "cumsum",
        "dist",
        "erfinv",
        "exp",
        "expm1",
        "group_norm",
        "hinge_embedding_loss",
        "kl_div",
        "l1_loss",
        "layer_norm",
        "log",
        "log_softmax",
        "log10",
        "log1p",
        "log2",
        "margin_ranking_loss",
        "mse_loss",
        "multilabel_margin_loss",
        "multi_margin_loss",
        "nll_loss",
        "norm",
        "normalize",
        "pdist",
        "poisson_nll_loss",
        "pow",
        "prod",
        "reciprocal",
        "rsqrt",
        "sinh",
        "smooth_l1_loss",
        "soft_margin_loss",
        "softmax",
        "softmin",
        "softplus",
        "sum",
        "renorm",
        "tan",
        "triplet_margin_loss",
    },
    "promote": {
        "addcdiv",
        "addcmul",
        "atan2",
        "bilinear",
        "cross",
        "dot",
        "grid_sample",
        "index_put",
        "scatter_add",
        "tensordot",
    },
    # autocast refuses it ("use binary_cross_entropy_with_logits")
    "banned": {"binary_cross_entropy"},
}
# Kernels torch registers that the docs' lists do not name, by the policy a fake CUDA run shows
# (tests/model/test_cuda_autocast.py checks each one it can run).
UNDOCUMENTED = {
    "lower_precision_fp": {
        "_convolution",
        "convolution",
        "conv_tbc",
        "cudnn_convolution",
        "cudnn_convolution_transpose",
        "einsum",
        "linalg_vecdot",
        "linalg_multi_dot",
        "lstm_cell",
        "gru_cell",
        "rnn_tanh_cell",
        "rnn_relu_cell",
        "_thnn_fused_lstm_cell",
        "_thnn_fused_gru_cell",
        "scaled_dot_product_attention",
        "_scaled_dot_product_flash_attention",
    },
    "fp32": {
        "logsumexp",
        "rms_norm",
        "huber_loss",
        "nll_loss2d",
        "native_layer_norm",
        "frobenius_norm",
        "linalg_vector_norm",
        "linalg_matrix_norm",
        "nuclear_norm",
        "_upsample_bicubic2d_aa",
        "_upsample_bilinear2d_aa",
        "_upsample_nearest_exact1d",
        "_upsample_nearest_exact2d",
        "_upsample_nearest_exact3d",
        "upsample_bicubic2d",
        "upsample_bilinear2d",
        "upsample_linear1d",
        "upsample_nearest1d",
        "upsample_nearest2d",
        "upsample_nearest3d",
        "upsample_trilinear3d",
        "interpolate",
    },
    "promote": {"grid_sampler", "vdot"},
}
LOW = (torch.bfloat16, torch.float16)


def python_name(aten_name: str) -> str:
    """aten::softmax.int -> softmax."""
    return aten_name.split("::", 1)[-1].split(".", 1)[0]


@functools.lru_cache(maxsize=1)
def cuda_autocast_ops() -> frozenset[str]:
    """Python-level names of every op the installed torch has a CUDA autocast kernel for."""
    return frozenset(python_name(op) for op in torch._C._dispatch_get_registrations_for_dispatch_key("AutocastCUDA"))


def documented_policy(name: str) -> str | None:
    for table in (DOCUMENTED, UNDOCUMENTED):
        for policy, names in table.items():
            if name in names:
                return policy
    return None


def _fake_cuda(value, mode):
    if isinstance(value, torch.Tensor):
        with mode:
            return torch.empty_strided(value.shape, value.stride(), dtype=value.dtype, device="cuda")
    if isinstance(value, (list, tuple)):
        return type(value)(_fake_cuda(v, mode) for v in value)
    return value


def _first_tensor(value):
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (list, tuple)):
        return next((t for t in map(_first_tensor, value) if t is not None), None)
    return None


def cuda_autocast_dtype(func, args=(), kwargs=None, dtype=torch.bfloat16) -> torch.dtype | None:
    """The dtype `func(*args, **kwargs)` returns under CUDA autocast to `dtype`, asked of torch's own CUDA
    autocast kernels on fake CUDA tensors; None where the fake run fails."""
    from torch._subclasses.fake_tensor import FakeTensorMode

    mode = FakeTensorMode(allow_non_fake_inputs=True)
    enabled, previous = torch.is_autocast_enabled("cuda"), torch.get_autocast_dtype("cuda")
    try:
        fake_args = _fake_cuda(tuple(args), mode)
        fake_kwargs = {k: _fake_cuda(v, mode) for k, v in (kwargs or {}).items()}
        torch.set_autocast_dtype("cuda", dtype)
        torch.set_autocast_enabled("cuda", True)
        with mode, torch.no_grad():
            out = _first_tensor(func(*fake_args, **fake_kwargs))
        return out.dtype if out is not None else None
    except Exception:  # an op the fake mode cannot run here (data-dependent, or needing a CUDA build)
        return None
    finally:
        torch.set_autocast_enabled("cuda", enabled)
        torch.set_autocast_dtype("cuda", previous)


def _up(value):
    if isinstance(value, (list, tuple)):
        return type(value)(_up(v) for v in value)
    return value.float() if isinstance(value, torch.Tensor) and value.dtype in LOW else value


def _dtypes(values) -> tuple:
    return tuple(
        v.dtype if isinstance(v, torch.Tensor) else _dtypes(v) if isinstance(v, (list, tuple)) else None for v in values
    )


def _flat(values):
    for v in values:
        if isinstance(v, tuple):
            yield from _flat(v)
        else:
            yield v


class _CudaAutocastLists(TorchFunctionMode):
    """Upcasts a call's low-precision inputs to fp32 where CUDA autocast would run it in fp32 (its fp32
    list, or its promote list with an fp32 input); everything else is left to CPU autocast."""

    def __init__(self):
        super().__init__()
        self.handled = cuda_autocast_ops() | DOCUMENTED["fp32"] | DOCUMENTED["promote"] | UNDOCUMENTED["fp32"]
        self.decisions: dict = {}

    def _upcast(self, func, name: str, args, kwargs) -> bool:
        dtypes = _dtypes([*args, *kwargs.values()])
        key = (func, dtypes, tuple(kwargs))
        if key not in self.decisions:
            cuda = cuda_autocast_dtype(func, args, kwargs, torch.get_autocast_dtype("cpu"))
            if cuda is None:  # torch could not say: the documented lists do
                policy = documented_policy(name)
                self.decisions[key] = policy == "fp32" or (policy == "promote" and torch.float32 in set(_flat(dtypes)))
            else:
                self.decisions[key] = cuda == torch.float32
        return self.decisions[key]

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if (
            name in self.handled
            and torch.is_autocast_enabled("cpu")
            and kwargs.get("dtype") is None
            and set(_flat(_dtypes([*args, *kwargs.values()]))) & set(LOW)
            and self._upcast(func, name, args, kwargs)
        ):
            args = tuple(_up(a) for a in args)
            kwargs = {k: _up(v) for k, v in kwargs.items()}
        return func(*args, **kwargs)


@contextlib.contextmanager
def cuda_autocast_fp32_ops():
    """CPU autocast with CUDA autocast's fp32 and promote choices applied (see the module docstring)."""
    with _CudaAutocastLists():
        yield
