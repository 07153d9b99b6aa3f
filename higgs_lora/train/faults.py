"""Faults a multi-day run must survive: invalid samples, non-finite steps, SIGTERM, a dying rank.

- invalid samples: `data.selection.select_samples` (re-exported here for recipe.py).
- `NonFiniteGuard`: a NaN/inf loss or gradient skips the optimizer step (gradients dropped, so neither
  weights nor optimizer state change), is counted and logged; N in a row abort the run.
- `StopOnSignal`: SIGTERM (a preempted cluster job) or Ctrl-C (SIGINT) saves a checkpoint at the next
  step boundary and stops; a second one stops at once. Every process agrees on the stop, so DDP never
  waits on a rank that left.
- `name_failing_rank`: under torchrun, an exception says which rank failed before torchrun tears down.
"""

from __future__ import annotations

import os
import signal
import sys
from contextlib import contextmanager

from transformers import TrainerCallback

from ..data.selection import SKIPPED_SAMPLES, select_samples  # noqa: F401  (recipe.py imports them from here)

EXIT_INTERRUPTED = 75  # sysexits EX_TEMPFAIL: stopped early on purpose, resume later


class TrainingAborted(RuntimeError):
    """Training stopped on a fault it cannot work around; the last checkpoint is intact."""


class TrainingInterrupted(RuntimeError):
    """Training stopped by a signal after saving a checkpoint; `--resume_from_checkpoint latest` continues."""

    def __init__(self, message: str, checkpoint: str | None):
        super().__init__(message)
        self.checkpoint = checkpoint


# --- invalid samples -------------------------------------------------------------------------


def _all_ranks_any(flag: bool, device) -> bool:
    """True when `flag` is set on any process (a no-op without torch.distributed)."""
    import torch

    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX)
    return bool(t.item() > 0)


# --- non-finite steps ------------------------------------------------------------------------


class NonFiniteGuard(TrainerCallback):
    """Skips optimizer steps whose loss or gradient is NaN/inf; aborts after `max_in_a_row` in a row.

    The trainer reports each micro-batch loss (`note_loss`, kept on the device: no host sync per
    micro-step); the check runs once per optimizer step, before `optimizer.step()`. Skipping drops
    the gradients (`grad = None`): AdamW then leaves both the weights and its moments untouched.
    The learning-rate schedule and the step counter still advance (the step was spent).

    `check_gradients=False` under fp16: there the loss scaler overflows the gradients on purpose while
    it finds its scale (and skips those steps itself), so only a non-finite loss counts.
    """

    def __init__(self, max_in_a_row: int = 5, check_gradients: bool = True):
        if max_in_a_row < 1:
            raise ValueError(f"--max_nonfinite_steps must be at least 1, got {max_in_a_row}")
        self.max_in_a_row = max_in_a_row
        self.check_gradients = check_gradients
        self.in_a_row = 0
        self.skipped_since_log = 0
        self._bad_loss = None

    def note_loss(self, loss) -> None:
        import torch

        bad = ~torch.isfinite(loss.detach())
        self._bad_loss = bad if self._bad_loss is None else (self._bad_loss | bad)

    def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
        import torch

        params = [p for p in model.parameters() if p.requires_grad and p.grad is not None]
        bad = self._bad_loss if self._bad_loss is not None else torch.zeros((), dtype=torch.bool)
        bad = bad.to(args.device)
        if params and self.check_gradients:
            # One fused kernel for all LoRA gradients; one host sync per optimizer step, not per tensor.
            norms = torch.stack(torch._foreach_norm([p.grad.detach() for p in params])).to(args.device)
            bad = bad | ~torch.isfinite(norms).all()
        self._bad_loss = None
        step = state.global_step + 1
        if not _all_ranks_any(bool(bad), args.device):
            self.in_a_row = 0
            return
        for p in model.parameters():
            p.grad = None
        self.in_a_row += 1
        self.skipped_since_log += 1
        if state.is_world_process_zero:
            print(
                f"warning: step {step}: non-finite loss or gradient, optimizer step skipped "
                f"({self.in_a_row} in a row; the run stops at {self.max_in_a_row})",
                file=sys.stderr,
            )
        if self.in_a_row >= self.max_in_a_row:
            raise TrainingAborted(
                f"training aborted at step {step}: {self.in_a_row} optimizer steps in a row had a non-finite "
                f"(NaN/inf) loss or gradient. Checkpoints already written are intact. Try a lower "
                f"--learning_rate, --mixed_precision no, or check the data; resume with "
                f"--resume_from_checkpoint latest (or raise --max_nonfinite_steps)."
            )

    def pop_log_count(self) -> int:
        count, self.skipped_since_log = self.skipped_since_log, 0
        return count


# --- SIGTERM ---------------------------------------------------------------------------------


class StopOnSignal(TrainerCallback):
    """On SIGTERM (preemption) or SIGINT (Ctrl-C): save a checkpoint at the next step boundary, then stop.

    `installed()` takes both signals for the duration of training; a second signal gets the previous
    handler (die now, or KeyboardInterrupt: the CLI's one line). Under DDP every process must stop at
    the same step, so the flag is agreed on with one tiny all-reduce per optimizer step.
    """

    def __init__(self, signals=(signal.SIGTERM, signal.SIGINT)):
        self.signals = signals
        self.requested = False
        self.signal_name = "SIGTERM"  # what the stop message names; a peer rank's stop reads as SIGTERM
        self.stopped_at: int | None = None
        self._previous = {}
        self._pid = os.getpid()

    def _handler(self, signum, frame):
        if os.getpid() != self._pid:
            # A data-loader worker forked with this handler: a terminal's Ctrl-C reaches the whole process
            # group, and the main process decides; the worker keeps serving batches until it is told.
            return
        self.requested = True
        self.signal_name = "Ctrl-C" if signum == signal.SIGINT else signal.Signals(signum).name
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        print(
            f"\n{self.signal_name}: saving a checkpoint at the end of this step, then stopping "
            f"(again to stop at once, losing the steps since the last checkpoint)",
            file=sys.stderr,
            flush=True,
        )

    @contextmanager
    def installed(self):
        import threading

        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        self._pid = os.getpid()
        self._previous = {sig: signal.signal(sig, self._handler) for sig in self.signals}
        try:
            yield self
        finally:
            for sig, previous in self._previous.items():
                signal.signal(sig, previous)
            self._previous = {}

    def on_step_end(self, args, state, control, **kwargs):
        if _all_ranks_any(self.requested, args.device):
            self.requested = True
            self.stopped_at = state.global_step
            control.should_save = True
            control.should_training_stop = True
            # Trainer evaluates before it saves: a held-out pass here would spend the preemption grace period.
            control.should_evaluate = False
        return control


# --- dying ranks -----------------------------------------------------------------------------


@contextmanager
def name_failing_rank():
    """Under torchrun, prefix a failure with the rank it happened on (torchrun then ends the job)."""
    try:
        yield
    except (KeyboardInterrupt, SystemExit, TrainingInterrupted):
        raise
    except BaseException as err:
        if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
            print(
                f"error: rank {os.environ['RANK']} of {os.environ['WORLD_SIZE']} failed: {type(err).__name__}: {err}",
                file=sys.stderr,
                flush=True,
            )
        raise
