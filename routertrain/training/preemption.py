"""Preemption: SIGTERM or SIGINT during training ends the run at the next step boundary, resumable.

A cluster announces preemption with SIGTERM a little before the kill. While the training loop runs,
``StopSignals`` records the signal instead of dying; at the end of the current optimizer step every
rank learns whether any rank got one (``stop_requested``), a checkpoint is saved at that step, and
``train`` raises ``Preempted``, which ``train.py`` reports in one line before exiting with
``PREEMPTED_EXIT`` (75). Rerunning the same command resumes from that checkpoint. A second Ctrl-C
interrupts at once; repeated SIGTERMs are ignored (the checkpoint is being saved). A launcher that
kills its workers some seconds after SIGTERM (torchrun: 30 s) bounds the time that saving can take.

``die_with_parent`` makes a process get SIGTERM when its parent dies (Linux), so a training process
stops cleanly when its ``accelerate launch`` launcher, or a sweep runner above it, is killed.
"""

from __future__ import annotations

import ctypes
import os
import signal
import threading

import torch

PREEMPTED_EXIT = 75  # EX_TEMPFAIL: interrupted, resumable
SIGNALS = (signal.SIGTERM, signal.SIGINT)
PR_SET_PDEATHSIG = 1


class Preempted(Exception):
    """Training stopped on a signal after saving a checkpoint; the message says how to resume."""


class StopSignals:
    """Context manager: SIGTERM and SIGINT set ``received`` (the signal's name) instead of ending the process."""

    def __init__(self):
        self.received: str | None = None
        self.previous: dict = {}

    def handle(self, signum, frame) -> None:
        self.received = self.received or signal.Signals(signum).name
        # a second Ctrl-C acts at once; further SIGTERMs (the launcher's death, a scheduler's repeat) change nothing
        signal.signal(signal.SIGINT, self.previous.get(signal.SIGINT, signal.default_int_handler))

    def __enter__(self) -> "StopSignals":
        if threading.current_thread() is threading.main_thread():
            self.previous = {sig: signal.getsignal(sig) for sig in SIGNALS}
            for sig in SIGNALS:
                signal.signal(sig, self.handle)
        return self

    def __exit__(self, *exc) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


def stop_requested(accelerator, signals: StopSignals) -> bool:
    """Whether any rank received a stop signal (one small all-reduce per step when there are several)."""
    if accelerator.num_processes == 1:
        return signals.received is not None
    flag = torch.tensor([1.0 if signals.received else 0.0], device=accelerator.device)
    return accelerator.reduce(flag, reduction="sum").item() > 0


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Ask the kernel to send ``sig`` to this process when its parent exits (Linux; elsewhere nothing)."""
    parent = os.getppid()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except (OSError, AttributeError):
        return
    if os.getppid() != parent:  # the parent died before the request took effect
        os.kill(os.getpid(), sig)
