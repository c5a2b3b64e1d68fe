"""How the cost grows with the number of images and of configurations.

Times one configuration per split protocol (``seed``: 2,400 training images, ``full``: 12,000)
with normcheck's trainer on all cores, prints the cost per training image, and what a grid of
N configurations would take at that rate on one process.

    python benchmarks/data_scaling.py --data-dir ../shared/datasets/cifar10-cat-dog-horse
"""

import argparse
import statistics
import time

import torch

from normcheck.data import load_splits
from normcheck.device import cpu_count
from normcheck.options import add_options, data_dir
from normcheck.records import DataSpec, TrainConfig
from normcheck.train import DeviceData, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_options(parser.add_argument, ("data_dir",))
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--configurations", type=int, nargs="+", default=[18, 90, 180])
    args = parser.parse_args()
    args.data_dir = data_dir(args.data_dir)
    torch.set_num_threads(cpu_count())
    print(f"{cpu_count()} threads; one configuration = 5 epochs, batch 64, fc_units 64, "
          f"batchnorm and none alternating")
    for protocol in ("seed", "full"):
        start = time.perf_counter()
        splits = load_splits(args.data_dir, DataSpec(protocol=protocol))
        data = DeviceData.from_splits(splits, torch.device("cpu"))
        load = time.perf_counter() - start
        seconds = [train(TrainConfig(lr=0.003, fc_units=64, norm=norm, seed=i), data)[0]
                   .train_seconds for i in range(args.repeats) for norm in ("none", "batchnorm")]
        per_config = statistics.median(seconds)
        n = len(splits.train_y)
        grids = ", ".join(f"{k} configurations {k * per_config / 60:.1f} min"
                          for k in args.configurations)
        print(f"{protocol:4s}: {n:6d} train / {len(splits.val_y):5d} val / {len(splits.test_y):5d}"
              f" test images; data ready in {load:.1f} s; {per_config:6.1f} s per configuration "
              f"({per_config / (5 * n) * 1e6:.0f} us per training image per epoch); {grids}",
              flush=True)


if __name__ == "__main__":
    main()
