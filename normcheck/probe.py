"""The probe's settings, apart from its torch code (``normcheck.stability``, ``normcheck.shift``),
so that records and reports can say what it measured without importing torch."""

PROBE_BATCH = 128  # images in the fixed probe batch, the classes equally represented
PROBE_STEPS = (0.5, 1.0, 2.0)  # distances moved, as multiples of the optimizer's update
SHIFT_METRICS = ("ics_l2", "ics_cosine", "input_mean_shift", "input_var_shift")  # shift.py
