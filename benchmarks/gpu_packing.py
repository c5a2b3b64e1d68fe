"""Runs per second for the full grid: unpacked in W processes sharing one device, against
packed (``--pack P``) in one process, with each layout's peak memory, on a GPU and on the CPU.

Each layout starts its processes (as xdist starts its workers), and each loads its splits onto
the device and trains a one-epoch warm-up run before a barrier; the clock runs from the
barrier until the last process has trained its share (unpacked: configuration by
configuration, as ``normcheck.train`` does; packed: ``normcheck.packs.packs`` of at most P,
each by ``normcheck.train_packed``). So the figures are training throughput: a session adds
start-up, MLflow logging and the reports (benchmarks/README.md, "Speed and memory").

Rows print side by side, each with its ratio to the same device's unpacked single process.
Memory is the peak CUDA allocation per process (``torch.cuda.max_memory_allocated``) on a GPU,
and the peak resident set per process on the CPU. ``--configs N`` trains N of the grid's
configurations, whole architectures first (packs need runs of one width and norm), so that the
CPU finishes in minutes; ``--seeds 30`` gives the 540-run study.

    python benchmarks/gpu_packing.py --data-dir ../shared/datasets/cifar10-cat-dog-horse
    python benchmarks/gpu_packing.py --data-dir ... --device cpu --configs 15 --packs 3,5,15
"""

import argparse
import multiprocessing as mp
import resource
import sys
import time
from dataclasses import asdict

from normcheck.grid import load_grid
from normcheck.options import add_options, data_dir
from normcheck.packs import pack_key, packs
from normcheck.provenance import stamp
from normcheck.records import TrainConfig


def grid_configs(grid: str, seeds: int, count: int | None) -> list[TrainConfig]:
    """The grid's configurations, grouped by architecture (stable), the first ``count``."""
    configs = sorted(load_grid(grid).with_replicates(seeds).configs(), key=pack_key)
    return configs[:count] if count else configs


def worker(index: int, workers: int, pack: int, configs: list[dict], grid: str,
           data: str | None, device_name: str, barrier, queue) -> None:
    """One process: its share of ``configs`` (every ``workers``-th), packed by ``pack``."""
    import torch

    from normcheck.device import cpu_count
    from normcheck.splits import Splits
    from normcheck.train import DeviceData, train
    from normcheck.train_packed import train_packed

    mine = [TrainConfig(**c) for c in configs][index::workers]
    device = torch.device(device_name)
    if device.type == "cpu":
        torch.set_num_threads(max(1, cpu_count() // workers))
    splits = Splits(data, load_grid(grid).data, device=device)
    datas = {s: DeviceData.from_splits(splits.split(s), device)
             for s in sorted({c.split_seed for c in mine})}
    warm = TrainConfig(**{**asdict(mine[0]), "epochs": 1})
    train(warm, datas[warm.split_seed])
    if pack > 1:
        train_packed([warm] * min(pack, 2), [datas[warm.split_seed]] * min(pack, 2))
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
    barrier.wait()
    start = time.monotonic()
    for group in packs(mine, pack):
        if len(group) == 1:
            train(group[0], datas[group[0].split_seed])
        else:
            train_packed(group, [datas[c.split_seed] for c in group])
    if device.type == "cuda":
        torch.cuda.synchronize()
        memory = torch.cuda.max_memory_allocated(device) / 2**20
    else:
        memory = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    queue.put((start, time.monotonic(), memory, len(mine)))


def layout(workers: int, pack: int, configs: list[TrainConfig], grid: str, data: str | None,
           device: str) -> tuple[float, list[float]]:
    """Seconds from the barrier to the last process's end, and each process's peak MiB."""
    context = mp.get_context("spawn")  # as xdist: fresh processes, CUDA initialised in each
    barrier, queue = context.Barrier(workers), context.Queue()
    dicts = [asdict(c) for c in configs]
    processes = [context.Process(target=worker, args=(i, workers, pack, dicts, grid, data,
                                                      device, barrier, queue))
                 for i in range(workers)]
    for p in processes:
        p.start()
    reports = [queue.get() for _ in processes]
    for p in processes:
        p.join()
        if p.exitcode:
            sys.exit(f"a {workers}-process, pack-{pack} worker failed (exit {p.exitcode})")
    assert sum(r[3] for r in reports) == len(configs)
    return max(r[1] for r in reports) - min(r[0] for r in reports), [r[2] for r in reports]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_options(parser.add_argument, ("data_dir",))
    parser.add_argument("--grid", default="full", help="grid profile [full]")
    parser.add_argument("--seeds", type=int, default=5,
                        help="replicates: 5 is the 90-run grid, 30 the 540-run study [5]")
    parser.add_argument("--configs", type=int, default=None,
                        help="train only N configurations (default: all)")
    parser.add_argument("--cpu-configs", type=int, default=15,
                        help="N for the CPU rows when a GPU is there too [15]")
    parser.add_argument("--workers", default="1,2,4,8", help="unpacked processes [1,2,4,8]")
    parser.add_argument("--packs", default="3,5,15",
                        help="pack sizes P (the 90-run grid's architectures hold 15 runs "
                             "each, the 540-run study's 90) [3,5,15]")
    parser.add_argument("--packed-workers", default="1",
                        help="processes for each packed layout [1]")
    parser.add_argument("--device", action="append", choices=["cuda", "cpu"],
                        help="devices (default: cuda and cpu where CUDA is there, else cpu)")
    args = parser.parse_args()
    import torch

    devices = args.device or (["cuda", "cpu"] if torch.cuda.is_available() else ["cpu"])
    workers = [int(w) for w in args.workers.split(",")]
    sizes = [int(p) for p in args.packs.split(",")]
    packed_workers = [int(w) for w in args.packed_workers.split(",")]
    data = data_dir(args.data_dir)
    print(stamp(",".join(devices)), f"torch {torch.__version__}")
    if "cuda" in devices:
        print(f"GPU: {torch.cuda.get_device_name(0)}")
    print(f"{'device':6s} {'runs':>5s} {'layout':22s} {'seconds':>8s} {'runs/s':>7s} "
          f"{'x 1 proc':>8s} {'peak MiB/process':>17s}")
    for device in devices:
        count = args.configs if device == "cuda" or len(devices) == 1 else args.cpu_configs
        configs = grid_configs(args.grid, args.seeds, count)
        rows = [(1, 1)] + [(w, 1) for w in workers if w != 1] + [
            (w, p) for p in sizes for w in packed_workers]
        base = None
        for w, p in rows:
            seconds, memory = layout(w, p, configs, args.grid, data, device)
            base = base or seconds  # the first row: unpacked, one process
            procs = f"{w} process{'es' if w > 1 else ''}"
            name = f"unpacked, {procs}" if p == 1 else f"packed P={p}, {procs}"
            print(f"{device:6s} {len(configs):5d} {name:22s} {seconds:8.1f} "
                  f"{len(configs) / seconds:7.2f} {base / seconds:7.2f}x "
                  f"{max(memory):10.0f} max", flush=True)


if __name__ == "__main__":
    main()
