"""Which device a process trains on, and how many CPU threads it may use."""

import os

import torch


def cpu_count() -> int:
    """Cores this process may run on (respects affinity masks and container limits)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def select_device(worker_index: int = 0, worker_count: int = 1) -> torch.device:
    """A GPU per worker when CUDA is there; else the CPU with a fair share of its threads."""
    if torch.cuda.is_available():
        return torch.device("cuda", worker_index % torch.cuda.device_count())
    torch.set_num_threads(max(1, cpu_count() // max(1, worker_count)))
    return torch.device("cpu")
