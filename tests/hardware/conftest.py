"""Fixtures of the hardware tests: models at three sizes."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))  # hw_models, tiny_tflite

from hw_models import flow_net, residual_net

from edgenas.tflite import graph_to_tflite


@pytest.fixture(scope="session")
def small_model() -> bytes:
    """~7 MMAC at 48x64, ending in DEPTH_TO_SPACE (falls back to the CPU on Ethos-U55)."""
    return graph_to_tflite(residual_net(48, 64, cpu_op=True), seed=1)


@pytest.fixture(scope="session")
def medium_model() -> bytes:
    """~26 MMAC at 96x128: its feature maps overflow a 384 KiB dedicated SRAM (spills to DRAM)."""
    return graph_to_tflite(residual_net(96, 128, cpu_op=True), seed=2)


@pytest.fixture(scope="session")
def big_model() -> bytes:
    """The seed study's flow network at 6x192x256, 1.07 GMAC (see hw_models.flow_net)."""
    return graph_to_tflite(flow_net(), seed=3)


@pytest.fixture(scope="session")
def oversized_model() -> bytes:
    """0.4 GMAC at 384x512: 3.8 MiB SRAM on U55 (2 MiB board), 4.5 MiB on U85 (4 MiB board); spills on U65."""
    return graph_to_tflite(residual_net(384, 512, cpu_op=False), seed=4)
