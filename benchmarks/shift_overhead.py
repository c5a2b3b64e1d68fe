"""What the covariate-shift probe (normcheck/shift.py) costs a run, measured side by side.

The same configurations train with the probe and without it (``normcheck.stability``'s call
of it replaced by one that measures nothing), alternating A B A B in this process, on the
study's settings (5 epochs, base_channels 16, the seed protocol). Prints each configuration's
median seconds per run with and without, and their ratio; the issue's target is 1.10 or less.

    python benchmarks/shift_overhead.py --data-dir ../shared/datasets/cifar10-cat-dog-horse
"""

import argparse
import statistics
import subprocess
from pathlib import Path
from unittest import mock

import torch

import normcheck
from normcheck.data import load_splits
from normcheck.device import select_device
from normcheck.options import add_options, data_dir
from normcheck.records import DataSpec, TrainConfig
from normcheck.train import DeviceData, train

CONFIGS = [TrainConfig(lr=3e-3, fc_units=fc, norm=norm) for norm in ("none", "batchnorm")
           for fc in (32, 128)]


def seconds(config: TrainConfig, data: DeviceData, probe: bool) -> float:
    if probe:
        return train(config, data)[0].train_seconds
    with mock.patch("normcheck.stability.covariate_shift", lambda *args: {}):
        return train(config, data)[0].train_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_options(parser.add_argument, ("data_dir",))
    parser.add_argument("--repeats", type=int, default=3, help="A B pairs per configuration")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: all cores; 1: as one of two xdist workers)")
    args = parser.parse_args()
    device = select_device()
    if args.threads:
        torch.set_num_threads(args.threads)
    splits = load_splits(data_dir(args.data_dir), DataSpec())
    data = DeviceData.from_splits(splits, device)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, cwd=Path(__file__).parent).stdout.strip()
    print(f"normcheck {normcheck.__version__}, commit {commit}, torch {torch.__version__}, "
          f"{device}, {torch.get_num_threads()} threads; {args.repeats} A B pairs per "
          "configuration, 5 epochs each, seed protocol")
    seconds(CONFIGS[0], data, True)  # warm up
    print("| configuration | with the probe (s, median) | without (s, median) | ratio |")
    print("|---|---|---|---|")
    ratios = []
    for config in CONFIGS:
        timed: dict[bool, list[float]] = {True: [], False: []}
        for _ in range(args.repeats):
            for probe in (True, False):
                timed[probe].append(seconds(config, data, probe))
        with_, without = (statistics.median(timed[p]) for p in (True, False))
        ratios.append(with_ / without)
        print(f"| {config.case_id} | {with_:.2f} | {without:.2f} | {with_ / without:.3f} |")
    print(f"median ratio over configurations: {statistics.median(ratios):.3f}")


if __name__ == "__main__":
    main()
