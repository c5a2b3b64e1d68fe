"""The study as a test suite: load the normcheck plugin for everything under experiments/."""

pytest_plugins = ["normcheck.plugin"]
