"""Settings for every test."""

from __future__ import annotations

import os


def pytest_configure(config) -> None:
    # Tests train to check training itself (bit-for-bit resume, seeds, stand-alone agreement): a training found
    # in the shared store (train/store.py) would make such checks compare a run with itself. Set before any
    # fixture of any scope runs, and inherited by the commands tests start; the store's own tests point it at
    # a folder of their own.
    os.environ["EDGENAS_TRAIN_STORE"] = "off"
