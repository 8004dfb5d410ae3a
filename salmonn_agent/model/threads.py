"""PyTorch's CPU threads when more than one Python thread runs the model.

PyTorch's CPU build parallelises with GNU OpenMP (libgomp). libgomp keeps a pool of worker
threads for every thread that has run a parallel region with more than one thread, and once
it manages more threads than the machine has cores, every pool's workers spin only briefly
before they sleep, so each of the thousands of small parallel regions of a decoding step pays a
wake-up. ``python tools/bench_threads.py --json`` measures it: on a 2-core machine, with one
parallel region on 2 threads in the main thread before loading, salmonn-mini's forward pass in
a second thread took 70 ms instead of 48 ms for one position and 146 ms instead of 89 ms for
18 (``OMP_WAIT_POLICY`` and ``GOMP_SPINCOUNT`` did not help; a main thread that never ran a
region on more than one thread does).

So a CPU model is loaded on one thread (:func:`one_thread`; loading is mostly copying memory),
and the threads that generate set their own thread count when they start
(:func:`use_threads`): a new thread does not inherit ``torch.set_num_threads`` from the thread
that made it, so the count the user chose is carried over explicitly.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch


@contextlib.contextmanager
def one_thread(device: str | torch.device | None = None) -> Iterator[None]:
    """Run the torch work inside on one CPU thread (the calling thread's count is restored
    after), when the model is for the CPU: ``device`` ``None``/``"auto"`` without CUDA, or a CPU
    device. A model for a GPU loads with every thread (its CPU work is only the loading)."""
    name = str(device) if device is not None else "auto"
    on_cpu = name.startswith("cpu") or (name == "auto" and not torch.cuda.is_available())
    if not on_cpu:
        yield
        return
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def use_threads(threads: int) -> None:
    """Give the calling thread ``threads`` torch CPU threads (call it first in a new thread)."""
    if threads > 0 and torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
