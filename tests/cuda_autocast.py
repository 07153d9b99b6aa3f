"""Emulate on CPU what CUDA autocast does differently from CPU autocast.

CUDA autocast runs a list of ops in fp32 whatever their input dtype ("autocast to float32" in
torch's AMP docs): `sum`, `prod`, `cumsum`, `softmax`, `log_softmax`, `pow`, `exp`, `log`, ...
CPU autocast keeps most of them (notably `sum`) in the input dtype, which is why a bf16 CPU run
never reproduced the first-step crash seen on an H200. Inside `cuda_autocast_fp32_ops()`, while
CPU autocast is enabled, those ops upcast low-precision float inputs to fp32, as on CUDA.
"""

import contextlib

import torch
from torch.overrides import TorchFunctionMode

# From torch's "CUDA Ops that can autocast to float32" list (the ones that take a tensor first).
FP32_OPS = {"sum", "prod", "cumsum", "cumprod", "softmax", "log_softmax", "pow", "exp", "log", "rsqrt",
            "norm", "reciprocal", "expm1", "log1p", "layer_norm", "group_norm"}
LOW = (torch.bfloat16, torch.float16)


def _up(x):
    return x.float() if isinstance(x, torch.Tensor) and x.dtype in LOW else x


class _CudaAutocastFp32(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in FP32_OPS and torch.is_autocast_enabled("cpu") and "dtype" not in kwargs:
            args = tuple(_up(a) for a in args)
            kwargs = {k: _up(v) for k, v in kwargs.items()}
        return func(*args, **kwargs)


@contextlib.contextmanager
def cuda_autocast_fp32_ops():
    with _CudaAutocastFp32():
        yield
