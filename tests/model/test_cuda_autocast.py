"""The CPU emulation of CUDA autocast (tests/cuda_autocast.py) follows the installed torch.

Torch's CUDA autocast kernels run on fake CUDA tensors without a GPU, so these tests ask torch itself
what CUDA autocast does and hold the emulation and its documented lists to it: a torch upgrade that
adds a kernel or moves an op between lists fails here, instead of changing silently what the CPU
tests mean.
"""

import cuda_autocast as C
import pytest
import torch
import torch.nn.functional as F
from cuda_autocast import cuda_autocast_dtype, cuda_autocast_fp32_ops

B, F32 = torch.bfloat16, torch.float32


def _t(dtype, *shape):
    return torch.randn(*(shape or (4, 4))).to(dtype)


def test_every_cuda_autocast_kernel_is_in_a_documented_list():
    registered = C.cuda_autocast_ops()
    assert {"sum", "softmax", "layer_norm", "mm", "addcmul"} <= registered  # the dispatcher answers at all
    unnamed = sorted(n for n in registered if C.documented_policy(n) is None)
    assert not unnamed, f"CUDA autocast kernels no list names (add them to cuda_autocast.py): {unnamed}"


def test_no_op_is_in_two_lists():
    tables = [names for table in (C.DOCUMENTED, C.UNDOCUMENTED) for names in table.values()]
    seen = set()
    for names in tables:
        assert not (seen & names), seen & names
        seen |= names


FP32_CALLS = {
    "sum": lambda x: torch.sum(x),
    "softmax": lambda x: torch.softmax(x, -1),
    "log_softmax": lambda x: F.log_softmax(x, -1),
    "exp": torch.exp,
    "log": torch.log,
    "pow": lambda x: torch.pow(x, 2),
    "__pow__": lambda x: x**2,
    "cumsum": lambda x: torch.cumsum(x, 0),
    "prod": lambda x: torch.prod(x),
    "rsqrt": torch.rsqrt,
    "layer_norm": lambda x: F.layer_norm(x, (4,)),
    "group_norm": lambda x: F.group_norm(x.view(1, 4, 4), 2),
    "norm": lambda x: torch.norm(x),
    "mse_loss": lambda x: F.mse_loss(x, x),
    "softplus": F.softplus,
    "logsumexp": lambda x: torch.logsumexp(x, 0),
    "rms_norm": lambda x: F.rms_norm(x, (4,)),
    "huber_loss": lambda x: F.huber_loss(x, x),
    "linalg_vector_norm": lambda x: torch.linalg.vector_norm(x),
    "interpolate": lambda x: F.interpolate(x.view(1, 1, 4, 4), scale_factor=2),
}
LOWER_CALLS = {
    "mm": lambda x: torch.mm(x, x),
    "matmul": lambda x: x @ x,
    "linear": lambda x: F.linear(x, x),
    "addmm": lambda x: torch.addmm(x, x, x),
}
PROMOTE_CALLS = {
    "addcmul": lambda a, b: torch.addcmul(a, b, b),
    "addcdiv": lambda a, b: torch.addcdiv(a, b, b),
    "atan2": torch.atan2,
    "scatter_add": lambda a, b: a.scatter_add(0, b.new_zeros(4, 4).long(), b),
}
# Ops whose fake CUDA run needs a CUDA build of torch ("not linked with support for cuda devices"):
# for these the emulation follows the documented lists.
NOT_PROBED = {
    "dot": lambda a, b: torch.dot(a[0], b[0]),
    "vdot": lambda a, b: torch.vdot(a[0], b[0]),
    "cross": lambda a, b: torch.cross(a[:, :3], b[:, :3], dim=1),
    "index_put": lambda a, b: a.index_put((torch.tensor([0]),), b[0]),
}


@pytest.mark.parametrize("name", sorted(FP32_CALLS))
def test_fp32_list_runs_in_fp32_under_cuda_autocast(name):
    assert C.documented_policy(name) == "fp32"
    assert cuda_autocast_dtype(lambda x: FP32_CALLS[name](x), (_t(B),)) == F32


@pytest.mark.parametrize("name", sorted(LOWER_CALLS))
def test_lower_precision_list_runs_in_bf16_under_cuda_autocast(name):
    assert C.documented_policy(name) == "lower_precision_fp" or name == "matmul"
    assert cuda_autocast_dtype(lambda x: LOWER_CALLS[name](x), (_t(F32),)) == B


@pytest.mark.parametrize("name", sorted(PROMOTE_CALLS))
def test_promote_list_runs_at_the_widest_input(name):
    assert C.documented_policy(name) == "promote"
    call = PROMOTE_CALLS[name]
    assert cuda_autocast_dtype(lambda a, b: call(a, b), (_t(F32), _t(B))) == F32
    assert cuda_autocast_dtype(lambda a, b: call(a, b), (_t(B), _t(B))) == B


def test_cpu_autocast_differs_which_is_why_the_emulation_exists():
    with torch.autocast("cpu", dtype=B):
        assert torch.sum(_t(B)).dtype == B  # CUDA: fp32


def test_the_emulation_applies_cuda_autocast_choices_on_cpu():
    x, f = _t(B), _t(F32)
    with cuda_autocast_fp32_ops(), torch.autocast("cpu", dtype=B):
        assert torch.sum(x).dtype == x.sum().dtype == F32
        assert F.layer_norm(x, (4,)).dtype == torch.softmax(x, -1).dtype == (x**2).dtype == F32
        assert torch.logsumexp(x, 0).dtype == F32  # on CUDA's list, not in the docs' one
        assert torch.addcmul(f, x, x).dtype == F32 and torch.addcmul(x, x, x).dtype == B  # promote
        assert x.index_put((torch.tensor([0]),), f[0]).dtype == F32  # promote, by the documented list
        assert (x + x).dtype == B  # no list: as it came
        assert torch.sum(x, dtype=B).dtype == B  # an explicit dtype wins, as on CUDA
    assert torch.sum(x).dtype == B  # outside autocast nothing changes


def test_the_emulation_does_nothing_without_autocast():
    x = _t(B)
    with cuda_autocast_fp32_ops():
        assert torch.sum(x).dtype == torch.softmax(x, -1).dtype == B


@pytest.mark.parametrize("name", sorted(NOT_PROBED))
def test_ops_torch_cannot_answer_for_fall_back_to_the_documented_list(name):
    call = NOT_PROBED[name]
    assert cuda_autocast_dtype(lambda a, b: call(a, b), (_t(F32), _t(B))) is None
    assert C.documented_policy(name) == "promote"
    with cuda_autocast_fp32_ops(), torch.autocast("cpu", dtype=B):
        assert call(_t(F32), _t(B)).dtype == F32
