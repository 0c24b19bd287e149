"""Every training test generates or reads its data in its own cache folder, never the user's."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def _data_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGENAS_DATA_CACHE", str(tmp_path / "cache"))
