"""The probe's settings, apart from its torch code (``normcheck.stability``, ``normcheck.shift``),
so that records and reports can say what it measured without importing torch."""

PROBE_BATCH = 128  # images in the fixed probe batch, the classes equally represented
PROBE_STEPS = (0.5, 1.0, 2.0)  # distances moved, as multiples of the optimizer's update
SHIFT_METRICS = ("ics_l2", "ics_cosine", "input_mean_shift", "input_var_shift")  # shift.py
SHIFT_EVERY = 2  # the shift is measured after epochs 1, 3, 5, ... and the last (NaN between)


def measures_shift(epoch: int, epochs: int) -> bool:
    """Whether the covariate-shift probe runs after ``epoch`` (1-based) of ``epochs``."""
    return (epoch - 1) % SHIFT_EVERY == 0 or epoch == epochs
