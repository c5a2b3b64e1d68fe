"""normcheck: does normalization make a compact CNN less sensitive to learning rate and capacity?

The library trains and evaluates the study's configurations; the pytest plugin
(`normcheck.plugin`) turns a grid of them into test cases.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("normcheck")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"
