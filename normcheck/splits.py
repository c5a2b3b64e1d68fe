"""A process's data: each replicate's split drawn from the decoded images, on its device.

The images are decoded once (the decode cache) and read once per process; a split is drawn
from them by indexing, and only the latest split is kept, on the host and on the device (with
a split per replicate, keeping them all would multiply every process's memory by the
replicates). A process handed the fingerprints loads no data, and imports no torch, unless it
trains.
"""

from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from normcheck.records import DataSpec, TrainConfig, config_hash

if TYPE_CHECKING:
    import torch

    from normcheck.data import Images, SplitData
    from normcheck.train import DeviceData


@dataclass
class Splits:
    """The splits of one data source for one process (an xdist worker's share of the device)."""

    data_dir: str | None
    spec: DataSpec
    device: "torch.device | None" = None  # None: chosen when first needed, for ``worker``
    worker: tuple[int, int] = (0, 1)  # this process's xdist worker index and the count
    cache_dir: Path | None = None
    fingerprints: dict[int, str] = field(default_factory=dict)  # split seed -> fingerprint
    _images: "Images | None" = field(default=None, repr=False)
    _split: "SplitData | None" = field(default=None, repr=False)  # the latest split drawn
    _device_data: "DeviceData | None" = field(default=None, repr=False)  # and on the device

    def training_device(self) -> "torch.device":
        """A GPU per worker with CUDA, else the CPU with this worker's share of the threads."""
        if self.device is None:
            from normcheck.device import select_device

            self.device = select_device(*self.worker)
        return self.device

    def split(self, split_seed: int | None = None) -> "SplitData":
        """The split for ``split_seed`` (default: the data spec's own)."""
        seed = self.spec.split_seed if split_seed is None else split_seed
        if self._split is None or self._split.split_seed != seed:
            if self._images is None:
                from normcheck.data import Images

                self._images = Images(self.data_dir, self.spec.classes, self.cache_dir)
            self._split = self._images.splits(replace(self.spec, split_seed=seed))
            self.fingerprints[seed] = self._split.fingerprint
        return self._split

    def fingerprint(self, split_seed: int) -> str:
        """The data fingerprint of a split (part of every configuration's hash)."""
        if split_seed not in self.fingerprints:
            self.split(split_seed)
        return self.fingerprints[split_seed]

    def key(self, config: TrainConfig) -> str:
        """The configuration's hash on its split: how its runs and results are found."""
        return config_hash(config, self.fingerprint(config.split_seed))

    def on_device(self, split_seed: int) -> "DeviceData":
        """The split as float tensors on the device (only the latest is kept)."""
        from normcheck.train import DeviceData

        if self._device_data is None or self._device_data.fingerprint != \
                self.fingerprint(split_seed):
            self._device_data = DeviceData.from_splits(self.split(split_seed),
                                                       self.training_device())
        return self._device_data
