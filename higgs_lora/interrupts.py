"""Ctrl-C in a per-sample loop: finish the current item, stop, keep what was done.

    loop = UntilCtrlC(samples, "sample")
    for sample in loop:
        ...                      # one item: runs to its end even if Ctrl-C comes in the middle
    if loop.interrupted:
        ...                      # write the results of the items done, say how many

The first SIGINT only sets a flag (the loop ends before its next item); the handler that was there
before is put back at once, so a second Ctrl-C stops immediately (KeyboardInterrupt). Outside the
main thread signals cannot be taken, and the loop is a plain loop.
"""

from __future__ import annotations

import signal
import sys
import threading


class UntilCtrlC:
    def __init__(self, items, what: str = "item"):
        self.items = items
        self.what = what
        self.interrupted = False
        self._previous = None

    def _handler(self, signum, frame):
        self.interrupted = True
        signal.signal(signal.SIGINT, self._previous)
        print(
            f"\nCtrl-C: finishing this {self.what}, then writing what is done (Ctrl-C again to stop at once)",
            file=sys.stderr,
            flush=True,
        )

    def __iter__(self):
        if threading.current_thread() is not threading.main_thread():
            yield from self.items
            return
        self._previous = signal.signal(signal.SIGINT, self._handler)
        try:
            for item in self.items:
                if self.interrupted:
                    break
                yield item
        finally:
            if not self.interrupted:
                signal.signal(signal.SIGINT, self._previous)
