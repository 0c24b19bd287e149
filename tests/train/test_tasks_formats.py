"""Flow files a user has on disk, read back from fixtures written here from the format specifications
(struct for Middlebury .flo; a hand-rolled PNG encoder with all five scanline filters for KITTI's 16-bit
PNG; Pillow for 8-bit frames), never by the loaders' own code."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from task_helpers import assert_close

from edgenas.errors import ConfigError
from edgenas.train.tasks import make_task
from edgenas.train.tasks.flow_formats import read_flo, read_kitti_flow, read_pair_list, read_png

# ---- fixture writers, from the specifications ----------------------------------------------------------


def write_flo(path: Path, u: np.ndarray, v: np.ndarray, *, magic: float = 202021.25) -> None:
    """Middlebury: float32 magic, int32 width, int32 height, then (u, v) float32 pairs row by row."""
    h, w = u.shape
    body = b"".join(struct.pack("<ff", float(u[r, c]), float(v[r, c])) for r in range(h) for c in range(w))
    path.write_bytes(struct.pack("<fii", magic, w, h) + body)


def _filter_row(ftype: int, row: bytes, prev: bytes, bpp: int) -> bytes:
    """PNG specification, section 9.2: filtered byte = raw - predictor (mod 256)."""
    out = bytearray()
    for i, x in enumerate(row):
        a = row[i - bpp] if i >= bpp else 0
        b = prev[i]
        c = prev[i - bpp] if i >= bpp else 0
        if ftype == 0:
            pred = 0
        elif ftype == 1:
            pred = a
        elif ftype == 2:
            pred = b
        elif ftype == 3:
            pred = (a + b) // 2
        else:
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            pred = a if pa <= pb and pa <= pc else (b if pb <= pc else c)
        out.append((x - pred) % 256)
    return bytes(out)


def write_png(path: Path, pixels: np.ndarray, *, bit_depth: int = 16, colour_type: int = 2) -> None:
    """A non-interlaced PNG, row r filtered with type r % 5, the data split over two IDAT chunks."""
    h, w = pixels.shape[:2]
    ch = 1 if pixels.ndim == 2 else pixels.shape[2]
    dtype = ">u2" if bit_depth == 16 else "u1"
    rows = [pixels[r].astype(dtype).tobytes() for r in range(h)]
    bpp = ch * bit_depth // 8
    prev = bytes(len(rows[0]))
    raw = b""
    for r, row in enumerate(rows):
        raw += bytes([r % 5]) + _filter_row(r % 5, row, prev, bpp)
        prev = row
    data = zlib.compress(raw)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)

    half = len(data) // 2
    ihdr = struct.pack(">IIBBBBB", w, h, bit_depth, colour_type, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                     + chunk(b"IDAT", data[:half]) + chunk(b"IDAT", data[half:]) + chunk(b"IEND", b""))


def write_kitti(path: Path, u: np.ndarray, v: np.ndarray, valid: np.ndarray) -> None:
    """KITTI devkit: R = u * 64 + 2^15, G = v * 64 + 2^15, B = valid, 16-bit RGB."""
    rgb = np.stack([u * 64 + 2**15, v * 64 + 2**15, valid.astype(np.float64)], axis=-1)
    write_png(path, np.round(rgb).astype(np.uint16))


# ---- Middlebury .flo -----------------------------------------------------------------------------------


def test_flo_read_from_spec(tmp_path):
    rng = np.random.default_rng(0)
    u, v = rng.normal(0, 5, (5, 7)).astype(np.float32), rng.normal(0, 5, (5, 7)).astype(np.float32)
    u[2, 3] = 1e10  # Middlebury's "unknown"
    write_flo(tmp_path / "a.flo", u, v)
    f = read_flo(tmp_path / "a.flo")
    assert f.flow.shape == (5, 7, 2)
    assert f.valid.sum() == 34 and not f.valid[2, 3]
    np.testing.assert_array_equal(f.flow[..., 0][f.valid], u[f.valid])
    np.testing.assert_array_equal(f.flow[..., 1], v * f.valid)


def test_flo_bad_files(tmp_path):
    u = np.zeros((3, 4), np.float32)
    write_flo(tmp_path / "magic.flo", u, u, magic=1.0)
    with pytest.raises(ConfigError) as e:
        read_flo(tmp_path / "magic.flo")
    assert str(e.value).startswith(f"{tmp_path / 'magic.flo'}: bad magic number") and "\n" not in str(e.value)
    write_flo(tmp_path / "short.flo", u, u)
    (tmp_path / "short.flo").write_bytes((tmp_path / "short.flo").read_bytes()[:-8])
    with pytest.raises(ConfigError, match=r"short\.flo: wrong dimensions: the header says 4x3"):
        read_flo(tmp_path / "short.flo")
    with pytest.raises(ConfigError, match=r"missing\.flo: file not found"):
        read_flo(tmp_path / "missing.flo")
    (tmp_path / "tiny.flo").write_bytes(b"PIEH")
    with pytest.raises(ConfigError, match="tiny.flo: not a .flo file"):
        read_flo(tmp_path / "tiny.flo")


# ---- PNG / KITTI ---------------------------------------------------------------------------------------


def test_png_decoder_all_filters_16bit(tmp_path):
    px = np.random.default_rng(1).integers(0, 65536, (11, 9, 3)).astype(np.uint16)
    write_png(tmp_path / "a.png", px)
    img = read_png(tmp_path / "a.png")
    assert img.bit_depth == 16 and img.colour_type == 2
    np.testing.assert_array_equal(img.pixels, px)


def test_png_decoder_matches_pillow_8bit(tmp_path):
    """Pillow's encoder picks its own filters: another independent source of real-world files."""
    px = (np.add.outer(np.arange(40), np.arange(50))[..., None] * [1, 3, 7] % 256).astype(np.uint8)
    px[::7] = 255 - px[::7]
    Image.fromarray(px).save(tmp_path / "p.png")
    np.testing.assert_array_equal(read_png(tmp_path / "p.png").pixels, px)


def test_kitti_flow_png(tmp_path):
    rng = np.random.default_rng(2)
    u = np.round(rng.uniform(-100, 100, (6, 8)) * 64) / 64
    v = np.round(rng.uniform(-100, 100, (6, 8)) * 64) / 64
    valid = rng.uniform(size=(6, 8)) < 0.6
    write_kitti(tmp_path / "k.png", u, v, valid)
    f = read_kitti_flow(tmp_path / "k.png")
    np.testing.assert_array_equal(f.valid, valid)
    np.testing.assert_array_equal(f.flow[..., 0], np.where(valid, u, 0))  # R is u (file order, not BGR)
    np.testing.assert_array_equal(f.flow[..., 1], np.where(valid, v, 0))


def test_kitti_rejects_other_pngs(tmp_path):
    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "rgb8.png")
    with pytest.raises(ConfigError, match=r"rgb8\.png: not a KITTI flow PNG: expected 16-bit RGB .*8-bit"):
        read_kitti_flow(tmp_path / "rgb8.png")
    write_png(tmp_path / "grey16.png", np.zeros((4, 4), np.uint16), colour_type=0)
    with pytest.raises(ConfigError, match=r"grey16\.png: not a KITTI flow PNG.*1 channel"):
        read_kitti_flow(tmp_path / "grey16.png")
    (tmp_path / "text.png").write_text("hello")
    with pytest.raises(ConfigError, match=r"text\.png: not a PNG file"):
        read_kitti_flow(tmp_path / "text.png")
    good = tmp_path / "good.png"
    write_kitti(good, np.zeros((4, 4)), np.zeros((4, 4)), np.ones((4, 4), bool))
    data = bytearray(good.read_bytes())
    data[40] ^= 0xFF  # inside the first IDAT
    (tmp_path / "bad.png").write_bytes(bytes(data))
    with pytest.raises(ConfigError, match=r"bad\.png: corrupt PNG"):
        read_kitti_flow(tmp_path / "bad.png")


# ---- list files and the flow task on them --------------------------------------------------------------


def _write_sample(folder: Path, i: int, h: int, w: int, u: float, v: float, kind: str = "flo") -> str:
    rng = np.random.default_rng(i)
    for k in (1, 2):
        Image.fromarray(rng.integers(0, 256, (h, w, 3)).astype(np.uint8)).save(folder / f"{i}_img{k}.png")
    uu, vv = np.full((h, w), u, np.float32), np.full((h, w), v, np.float32)
    if kind == "flo":
        write_flo(folder / f"{i}_flow.flo", uu, vv)
    else:
        valid = np.zeros((h, w), bool)
        valid[::2, ::2] = True
        write_kitti(folder / f"{i}_flow.png", uu, vv, valid)
    return f"{i}_img1.png {i}_img2.png {i}_flow.{kind}"


def test_list_file_task_native_and_resized(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    lines = ["# frame1 frame2 flow", _write_sample(data, 0, 16, 20, 2.0, -1.0), "",
             _write_sample(data, 1, 16, 20, 4.0, 8.0, kind="png")]
    (data / "train.txt").write_text("\n".join(lines) + "\n")
    cfg = tmp_path / "space.yaml"
    task = make_task({"type": "flow", "train_data": "data/train.txt", "val_data": "data/train.txt", "fit": "crop"},
                     source=str(cfg), input_channels=6)
    d = task.data((16, 20), seed=0)
    x, t = d.train[0]
    frame1 = np.array(Image.open(data / "0_img1.png"))
    assert_close(x[:3], torch.from_numpy(frame1).permute(2, 0, 1).float() / 127.5 - 1)
    assert torch.all(t[0] == 2.0) and torch.all(t[1] == -1.0) and torch.all(t[2] == 1.0)
    _, t1 = d.train[1]
    assert t1[2].sum() == 8 * 10 and torch.all(t1[0][t1[2] > 0] == 4.0)  # KITTI: sparse
    assert d.description["train"]["samples"] == 2

    half = make_task({"type": "flow", "train_data": "data/train.txt", "val_data": "data/train.txt"},
                     source=str(cfg), input_channels=6).eval_data((8, 10), source=str(data / "train.txt"))
    x, t = half[0]
    assert x.shape == (6, 8, 10)
    assert_close(t[0], torch.full((8, 10), 1.0))  # flow values scaled with the image
    assert_close(t[1], torch.full((8, 10), -0.5))
    _, t1 = half[1]
    assert torch.all(t1[2] == 1.0)  # every 2x2 cell holds one measured vector
    assert_close(t1[:2], torch.tensor([2.0, 4.0]).view(2, 1, 1).expand(2, 8, 10))


def test_list_file_errors(tmp_path):
    _write_sample(tmp_path, 0, 8, 8, 0.0, 0.0)
    Image.fromarray(np.zeros((8, 9, 3), np.uint8)).save(tmp_path / "wide.png")
    write_flo(tmp_path / "small.flo", np.zeros((4, 4), np.float32), np.zeros((4, 4), np.float32))
    cases = {
        "0_img1.png 0_img2.png\n": r"list\.txt: line 1: expected 3 paths",
        "0_img1.png nope.png 0_flow.flo\n": r"nope\.png: file not found \(listed on line 1",
        "0_img1.png wide.png 0_flow.flo\n": r"wide\.png: frame size 9x8 differs",
        "0_img1.png 0_img2.png small.flo\n": r"small\.flo: flow size 4x4 differs",
        "# nothing\n": r"list\.txt: no samples listed",
    }
    for text, pattern in cases.items():
        (tmp_path / "list.txt").write_text(text)
        with pytest.raises(ConfigError, match=pattern) as e:
            task = make_task({"type": "flow", "val_data": str(tmp_path / "list.txt")}, source=None, input_channels=6)
            task.eval_data((8, 8))
        assert "\n" not in str(e.value)
    (tmp_path / "list.txt").write_text("0_img1.png 0_img2.png 0_flow.flo\n")
    task = make_task({"type": "flow", "val_data": str(tmp_path / "list.txt"), "fit": "crop"}, source=None,
                     input_channels=6)
    with pytest.raises(ConfigError, match=r"0_img1\.png: frames are 8x8 .*smaller than the 16x8 crop"):
        task.eval_data((8, 16))
    assert len(read_pair_list(tmp_path / "list.txt")) == 1
