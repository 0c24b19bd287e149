"""Files written whole or not at all (edgenas.atomic): a failing writer leaves the old file and no temporary,
a killed one leaves the old file under the final name, and written files get the usual permissions."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edgenas import atomic


def test_write_replaces_whole_with_the_usual_permissions(tmp_path: Path) -> None:
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    target = tmp_path / "out.txt"
    target.write_text("old")
    atomic.write_text(target, "new ✓", fsync=True)
    assert target.read_text(encoding="utf-8") == "new ✓"
    atomic.write_bytes(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert target.stat().st_mode & 0o777 == plain.stat().st_mode & 0o777  # not mkstemp's owner-only 0600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.txt", "plain.txt"]


def test_a_failing_writer_keeps_the_old_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic.replacing(target) as tmp:
        tmp.write_bytes(b"half")
        raise RuntimeError("the writer fails")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]


def test_a_killed_writer_leaves_the_old_file_under_the_final_name(tmp_path: Path) -> None:
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    started = tmp_path / "started"
    child = ("import sys, time\nfrom pathlib import Path\nfrom edgenas import atomic\n"
             "with atomic.replacing(Path(sys.argv[1])) as tmp:\n"
             "    with open(tmp, 'wb') as f:\n        f.write(b'half'); f.flush()\n"
             "        Path(sys.argv[2]).touch()\n        time.sleep(60)\n")
    proc = subprocess.Popen([sys.executable, "-c", child, str(target), str(started)])
    try:
        deadline = time.monotonic() + 60
        while not started.exists():
            assert proc.poll() is None and time.monotonic() < deadline, "the writer did not start"
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert target.read_bytes() == b"old"
    left = [p.name for p in tmp_path.iterdir() if p.name not in ("out.bin", "started")]
    assert len(left) == 1 and left[0].startswith(".out.bin.") and left[0].endswith(".tmp")  # hidden, named
    assert (tmp_path / left[0]).read_bytes() == b"half"
