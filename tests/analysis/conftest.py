"""The analysis tests share hand-made tables from analysis_tables.py (next to this file)."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
