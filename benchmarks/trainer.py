"""normcheck's trainer against the original pipeline, and against this machine's matmul peak.

The reference is the original study's data path: the split saved as PNG files in an
image-folder tree, torchvision ``ImageFolder`` with ``ToTensor``, ``DataLoader(batch_size=64,
shuffle=True, num_workers=2)``, images decoded every epoch, the same model, optimizer and
epochs. Both train on the same images for the same steps, alternating A B A B in this process;
the script prints the median time per configuration of each and their ratio, then the model's
training FLOPs per image, the matmul peak on the same thread count (best of a measurement
before and one after), and the fraction of it normcheck's trainer reaches, counting its training
FLOPs only and counting everything it computes (training, landscape probe, evaluation).

    python benchmarks/trainer.py --data-dir ../shared/datasets/cifar10-cat-dog-horse
"""

import argparse
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from torch.utils.data import DataLoader
from torchvision.datasets import ImageFolder
from torchvision.transforms import ToTensor

from normcheck.data import SplitData, load_splits
from normcheck.device import cpu_count, select_device
from normcheck.model import CompactCNN
from normcheck.options import add_options, data_dir
from normcheck.probe import PROBE_BATCH, PROBE_STEPS
from normcheck.records import DataSpec, TrainConfig
from normcheck.train import DeviceData, train


def write_png_tree(splits: SplitData, root: Path) -> tuple[Path, Path]:
    """The training and validation images as ``<split>/<class>/<i>.png``."""
    for name, x, y in (("train", splits.train_x, splits.train_y),
                       ("val", splits.val_x, splits.val_y)):
        for i, (image, label) in enumerate(zip(x, y, strict=True)):
            folder = root / name / splits.classes[int(label)]
            folder.mkdir(parents=True, exist_ok=True)
            Image.fromarray(image.permute(1, 2, 0).numpy()).save(folder / f"{i:05d}.png")
    return root / "train", root / "val"


def reference(config: TrainConfig, train_dir: Path, val_dir: Path, device: torch.device) -> float:
    """The original pipeline: decode PNGs every epoch through a DataLoader. Returns seconds."""
    start = time.perf_counter()
    torch.manual_seed(config.seed)
    train_set, val_set = ImageFolder(train_dir, ToTensor()), ImageFolder(val_dir, ToTensor())
    loader = DataLoader(train_set, batch_size=config.batch_size, shuffle=True, num_workers=2)
    val_loader = DataLoader(val_set, batch_size=config.batch_size, num_workers=2)
    model = CompactCNN(config.fc_units, config.norm, len(train_set.classes)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=config.lr,
                                 weight_decay=config.weight_decay)
    for _ in range(config.epochs):
        model.train()
        for x, y in loader:
            x, y = x.to(device), y.to(device)
            optimizer.zero_grad()
            F.cross_entropy(model(x), y).backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            correct = sum((model(x.to(device)).argmax(1) == y.to(device)).sum().item()
                          for x, y in val_loader)
        assert 0 <= correct <= len(val_set)
    return time.perf_counter() - start


def normcheck_trainer(config: TrainConfig, data: DeviceData) -> float:
    """normcheck's trainer (with its per-epoch landscape probe and test evaluation)."""
    return train(config, data)[0].train_seconds


def forward_flops_per_image(model: torch.nn.Module) -> int:
    """Multiply-adds x 2 of every conv and linear layer, from the shapes seen on one image."""
    flops = 0

    def count(module: torch.nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal flops
        if isinstance(module, torch.nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1]
            flops += 2 * module.in_channels * k * output[0].numel()
        elif isinstance(module, torch.nn.Linear):
            flops += 2 * module.in_features * module.out_features

    hooks = [m.register_forward_hook(count) for m in model.modules()]
    model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, 32, 32))
    for hook in hooks:
        hook.remove()
    return flops


def matmul_peak(device: torch.device, n: int = 2048, repeats: int = 10) -> float:
    """Achievable FP32 GFLOP/s: the best of several n x n matrix products."""
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    a @ b  # warm-up
    best = min(_timed(lambda: a @ b, device) for _ in range(repeats))
    return 2 * n**3 / best / 1e9


def _timed(fn, device: torch.device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_options(parser.add_argument, ("data_dir",))
    parser.add_argument("--repeats", type=int, default=3, help="A B pairs per norm [3]")
    parser.add_argument("--threads", type=int, default=cpu_count(), help="torch threads [cores]")
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda if there)")
    args = parser.parse_args()
    args.data_dir = data_dir(args.data_dir)
    torch.set_num_threads(args.threads)
    device = torch.device(args.device) if args.device else select_device()
    splits = load_splits(args.data_dir, DataSpec())
    data = DeviceData.from_splits(splits, device)
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else \
        f"{args.threads} threads"
    base = TrainConfig(lr=0.003, fc_units=64)
    print(f"torch {torch.__version__} on {device} ({where}), {len(splits.train_y)} train / "
          f"{len(splits.val_y)} val images, {base.epochs} epochs, batch {base.batch_size}, "
          f"fc_units {base.fc_units}")
    peak = matmul_peak(device)
    times: dict[str, list[float]] = {"reference": [], "normcheck": []}
    with tempfile.TemporaryDirectory() as tmp:
        train_dir, val_dir = write_png_tree(splits, Path(tmp))
        for repeat in range(args.repeats):
            for norm in ("none", "batchnorm"):
                config = replace(base, norm=norm, seed=repeat)
                times["reference"].append(reference(config, train_dir, val_dir, device))  # A
                times["normcheck"].append(normcheck_trainer(config, data))  # B
                print(f"  {norm:9s} reference {times['reference'][-1]:6.2f} s   normcheck "
                      f"{times['normcheck'][-1]:6.2f} s", flush=True)
    ref, ours = (statistics.median(times[k]) for k in ("reference", "normcheck"))
    print(f"median per configuration: reference {ref:.2f} s, normcheck {ours:.2f} s, "
          f"ratio {ref / ours:.1f}x")
    print(f"grid estimate (18 configurations): reference {18 * ref:.0f} s")

    model = CompactCNN(base.fc_units, "batchnorm")
    forward = forward_flops_per_image(model)
    n_train, n_val, n_test = len(splits.train_y), len(splits.val_y), len(splits.test_y)
    per_epoch = 3 * forward * n_train
    # everything the trainer computes: per epoch the training steps, the landscape probe's
    # forward/backward passes and the validation forward; the test forward once
    probe = 3 * forward * PROBE_BATCH * (1 + len(PROBE_STEPS))
    work = base.epochs * (per_epoch + probe + forward * n_val) + forward * n_test
    peak = max(peak, matmul_peak(device))  # before and after: the better of the two
    print(f"training FLOPs per image: {3 * forward / 1e6:.1f} MFLOP (forward {forward / 1e6:.1f} "
          f"MFLOP x 3); per epoch {per_epoch / 1e9:.1f} GFLOP; everything one configuration "
          f"computes ({base.epochs} epochs with probe and evaluation): {work / 1e9:.0f} GFLOP")
    print(f"matmul peak ({where}, 2048^2 FP32): {peak:.0f} GFLOP/s")
    for what, flops in (("training FLOPs only", base.epochs * per_epoch),
                        ("all its FLOPs", work)):
        achieved = flops / ours / 1e9
        print(f"normcheck's configuration, counting {what}: {achieved:.1f} GFLOP/s = "
              f"{achieved / peak:.1%} of peak")


if __name__ == "__main__":
    main()
