"""Dispatch-level counters for one training micro-step: what a CPU can measure of a GPU's costs.

- `OpCounters` (a TorchDispatchMode): every aten op the step runs. Device→host syncs are the ops
  whose result the host must read (`.item()`, `bool(tensor)`, boolean-mask indexing, `nonzero`,
  data-dependent output sizes), attributed to model code when boson's files are on the stack and
  to project code otherwise (higgs_lora, Trainer, accelerate, the loss); dtype conversions and the
  bytes they write; the tensors shaped like text logits (last dimension the text vocabulary).
- `flops`: torch's FlopCounterMode.
- `SavedBytes`: `saved_tensors_hooks`, the bytes autograd keeps for the backward.
- `peak_live_bytes`: the profiler's allocator events (CPU), the peak of memory allocated in the step.
"""

from __future__ import annotations

import itertools
import sys
from collections import Counter

import torch
from torch.utils._python_dispatch import TorchDispatchMode

aten = torch.ops.aten
# Ops whose output the host reads, or whose output size depends on tensor values: a GPU stalls on them.
_SYNC_OPS = {
    aten._local_scalar_dense.default,
    aten.is_nonzero.default,
    aten.nonzero.default,
    aten.masked_select.default,
    aten.equal.default,
    aten._unique2.default,
    aten.unique_dim.default,
    aten.unique_consecutive.default,
    aten.repeat_interleave.Tensor,
}
_BOOL_INDEXED = {aten.index.Tensor, aten.index_put_.default, aten.index_put.default, aten._index_put_impl_.default}
_BOOL_INDEXED_PACKETS = {f.overloadpacket for f in _BOOL_INDEXED}
_MODEL_CODE = ("boson_multimodal",)
DEBUG = False


def _flat(x):
    if isinstance(x, torch.Tensor):
        yield x
    elif isinstance(x, (list, tuple)):
        for y in x:
            yield from _flat(y)


def _bool_index(args) -> bool:
    indices = args[1] if len(args) > 1 else ()
    return any(isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) for i in (indices or ()))


def _in_model_code() -> bool:
    """Boson's files on the stack; in the backward, on the stack that created the running autograd node
    (recorded by anomaly mode, see `OpCounters`)."""
    frame = sys._getframe(2)
    while frame is not None:
        if any(part in frame.f_code.co_filename for part in _MODEL_CODE):
            return True
        frame = frame.f_back
    node = torch._C._current_autograd_node()
    if node is not None:
        trace = node.metadata.get("traceback_", ())
        return any(part in line for line in trace for part in _MODEL_CODE)
    return False


class OpCounters(TorchDispatchMode):
    def __init__(self, vocab: int, exclude_shapes=()):
        super().__init__()
        self.vocab = vocab
        self.exclude = {tuple(s) for s in exclude_shapes} | {tuple(reversed(s)) for s in exclude_shapes}
        self.syncs = Counter()  # "project" / "model"
        self.sync_ops = Counter()  # (where, op name)
        self.casts = 0
        self.cast_bytes = 0
        self.logits_tensors = 0
        self.logits_bytes = 0
        self.ops = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        self.ops += 1
        packet = func.overloadpacket
        if func in _SYNC_OPS or (packet in _BOOL_INDEXED_PACKETS and _bool_index(args)):
            where = "model" if _in_model_code() else "project"
            if DEBUG and where == "project":
                import traceback

                traceback.print_stack(limit=12)
            self.syncs[where] += 1
            self.sync_ops[(where, str(packet))] += 1
        inputs = list(_flat(list(args) + list(kwargs.values())))
        storages = {t.untyped_storage().data_ptr() for t in inputs if t.device.type != "meta"}
        for t in _flat(out):
            if not t.is_floating_point() or t.untyped_storage().data_ptr() in storages:
                continue  # views and in-place results allocate nothing
            if packet is aten._to_copy and inputs and inputs[0].is_floating_point() and inputs[0].dtype != t.dtype:
                self.casts += 1
                self.cast_bytes += t.nbytes
            if t.dim() >= 2 and t.shape[-1] == self.vocab and tuple(t.shape) not in self.exclude:
                self.logits_tensors += 1
                self.logits_bytes += t.nbytes
        return out

    def __enter__(self):
        # Anomaly mode records each autograd node's forward stack, so backward ops are attributed to the code
        # that ran them forward; NaN checks stay off (they would add syncs of their own).
        self._anomaly = torch.autograd.set_detect_anomaly(True, check_nan=False)
        return super().__enter__()

    def __exit__(self, *exc):
        try:
            return super().__exit__(*exc)
        finally:
            self._anomaly.__exit__(*exc)

    def report(self) -> dict:
        return {
            "ops": self.ops,
            "casts": self.casts,
            "cast_bytes": self.cast_bytes,
            "logits_tensors": self.logits_tensors,
            "logits_bytes": self.logits_bytes,
            "syncs": dict(self.syncs),
            "sync_ops": {f"{w}:{op}": n for (w, op), n in sorted(self.sync_ops.items())},
        }


class SavedBytes:
    """Bytes of the tensors autograd saves for the backward (each storage once; the model's own
    parameters, saved as themselves or as views, cost nothing extra and are left out)."""

    def __init__(self, parameters=()):
        self.bytes = 0
        self._seen = set()
        self._params = {p.untyped_storage().data_ptr() for p in parameters}

    def _pack(self, t):
        key = (t.untyped_storage().data_ptr(), t.untyped_storage().nbytes())
        if key not in self._seen and key[0] not in self._params:
            self._seen.add(key)
            self.bytes += t.untyped_storage().nbytes()
        return t

    def __enter__(self):
        self._hooks = torch.autograd.graph.saved_tensors_hooks(self._pack, lambda t: t)
        self._hooks.__enter__()
        return self

    def __exit__(self, *exc):
        return self._hooks.__exit__(*exc)


def peak_live_bytes(prof) -> int:
    """Peak of bytes allocated (net of frees) since the profiler started, from its CPU allocator events."""
    points = []
    for e in prof.events():
        used = e.cpu_memory_usage if e.name == "[memory]" else e.self_cpu_memory_usage
        if used:
            points.append((e.time_range.start, used))
    points.sort()
    return max(itertools.accumulate((u for _, u in points), initial=0))
