"""Optical-flow files a user already has on disk (FlyingChairs, Sintel, KITTI, ...), read from their
format specifications. Every failure is a ConfigError naming the file, on one line.

- Middlebury `.flo` (FlyingChairs, Sintel): float32 magic 202021.25 ("PIEH"), int32 width, int32 height,
  then width*height (u, v) float32 pairs, row-major, little-endian. Values above 1e9 mean "unknown"
  (invalid pixels).
- KITTI flow PNG: 16-bit, 3 channels in file order R, G, B: u = (R - 2^15) / 64, v = (G - 2^15) / 64,
  valid = B > 0 (the KITTI devkit reads the file as RGB with libpng; OpenCV's `imread` would give BGR).
  Pillow and imageio read 16-bit RGB PNGs as 8-bit, so this module decodes PNG itself (zlib + the five
  scanline filters of the PNG specification, vectorised along anti-diagonals).
- Image-pair lists: a text file, one sample a line, `frame1 frame2 flow` (paths relative to the list file;
  blank lines and lines starting with `#` skipped). Frames: any image Pillow reads (PNG, JPEG, PPM, ...),
  converted to RGB.
"""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import NamedTuple

import numpy as np

from edgenas.errors import ConfigError

FLO_MAGIC = 202021.25
UNKNOWN_FLOW = 1e9  # Middlebury: |u| or |v| above this marks an unknown vector
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class FlowField(NamedTuple):
    flow: np.ndarray  # [H, W, 2] float32 (u, v) in pixels; 0 where invalid
    valid: np.ndarray  # [H, W] bool


def _read_bytes(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise ConfigError("file not found", source=str(path)) from None
    except OSError as e:
        raise ConfigError(f"cannot read file ({e.strerror})", source=str(path)) from None


def read_flo(path: str | Path) -> FlowField:
    """A Middlebury .flo file."""
    p = Path(path)
    data = _read_bytes(p)
    if len(data) < 12:
        raise ConfigError(f"not a .flo file: {len(data)} bytes, shorter than its 12-byte header", source=str(p))
    magic, w, h = struct.unpack("<fii", data[:12])
    if magic != FLO_MAGIC:
        raise ConfigError(f"bad magic number {magic!r} (a .flo file starts with float32 {FLO_MAGIC})",
                          source=str(p))
    if w <= 0 or h <= 0 or w > 1 << 16 or h > 1 << 16:
        raise ConfigError(f"bad dimensions in the header: {w}x{h} (width x height)", source=str(p))
    expected = 12 + 8 * w * h
    if len(data) != expected:
        raise ConfigError(f"wrong dimensions: the header says {w}x{h} (width x height), {expected} bytes, "
                          f"but the file has {len(data)} bytes", source=str(p))
    flow = np.frombuffer(data, dtype="<f4", offset=12).reshape(h, w, 2).astype(np.float32)
    valid = np.isfinite(flow).all(-1) & (np.abs(flow) < UNKNOWN_FLOW).all(-1)
    return FlowField(np.where(valid[..., None], flow, 0.0).astype(np.float32), valid)


def _paeth(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    p = a + b - c
    pa, pb, pc = np.abs(p - a), np.abs(p - b), np.abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def _unfilter(raw: np.ndarray, h: int, row_bytes: int, bpp: int) -> np.ndarray:
    """Undo PNG scanline filtering: `raw` [h, 1 + row_bytes] (filter byte first) -> [h, row_bytes] uint8.
    Byte (r, i) depends on (r, i - bpp), (r - 1, i) and (r - 1, i - bpp), so all bytes at the same
    (r + pixel index) are independent: decode along those anti-diagonals, one numpy step each."""
    ftype = raw[:, 0].astype(np.int32)
    if (ftype > 4).any():
        raise ValueError(f"unknown filter type {int(ftype.max())}")
    npx = row_bytes // bpp
    x = raw[:, 1:].reshape(h, npx, bpp).astype(np.int32)
    if (ftype == 0).all():
        return x.reshape(h, row_bytes).astype(np.uint8)
    out = np.zeros((h + 1, npx + 1, bpp), dtype=np.int32)  # padded: row 0 and column 0 are the zeros
    for d in range(h + npx - 1):
        r = np.arange(max(0, d - npx + 1), min(h, d + 1))
        c = d - r
        a, b, cc = out[r + 1, c], out[r, c + 1], out[r, c]  # left, up, up-left
        f = ftype[r][:, None]
        pred = np.where(f == 1, a, np.where(f == 2, b, np.where(f == 3, (a + b) >> 1,
                                                                np.where(f == 4, _paeth(a, b, cc), 0))))
        out[r + 1, c + 1] = (x[r, c] + pred) & 0xFF
    return out[1:, 1:].reshape(h, row_bytes).astype(np.uint8)


class PngImage(NamedTuple):
    pixels: np.ndarray  # [H, W, channels], uint8 or uint16
    bit_depth: int
    colour_type: int  # 0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA


_CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def read_png(path: str | Path) -> PngImage:
    """Decode a non-interlaced PNG of bit depth 8 or 16 (what flow files use), keeping all its bits."""
    p = Path(path)
    data = _read_bytes(p)
    if not data.startswith(PNG_SIGNATURE):
        raise ConfigError("not a PNG file (bad signature)", source=str(p))
    pos, ihdr, idat = 8, None, []
    while pos + 8 <= len(data):
        (length,), ctype = struct.unpack(">I", data[pos : pos + 4]), data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        if len(body) != length or pos + 12 + length > len(data):
            raise ConfigError(f"truncated PNG ({ctype.decode('latin-1')} chunk)", source=str(p))
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        if zlib.crc32(ctype + body) & 0xFFFFFFFF != crc:
            raise ConfigError(f"corrupt PNG (bad CRC in the {ctype.decode('latin-1')} chunk)", source=str(p))
        if ctype == b"IHDR":
            ihdr = struct.unpack(">IIBBBBB", body)
        elif ctype == b"IDAT":
            idat.append(body)
        elif ctype == b"IEND":
            break
        pos += 12 + length
    if ihdr is None or not idat:
        raise ConfigError("truncated PNG (no IHDR or IDAT chunk)", source=str(p))
    w, h, depth, ctype_, _, _, interlace = ihdr
    if ctype_ not in _CHANNELS or depth not in (8, 16) or interlace != 0:
        raise ConfigError(f"unsupported PNG: bit depth {depth}, colour type {ctype_}, interlace {interlace} "
                          "(expected 8 or 16 bits, not interlaced)", source=str(p))
    ch = _CHANNELS[ctype_]
    bpp = ch * depth // 8
    try:
        raw = np.frombuffer(zlib.decompress(b"".join(idat)), dtype=np.uint8)
    except zlib.error as e:
        raise ConfigError(f"corrupt PNG image data ({e})", source=str(p)) from None
    if raw.size != h * (1 + w * bpp):
        raise ConfigError(f"corrupt PNG: {raw.size} bytes of image data for {w}x{h}", source=str(p))
    try:
        rows = _unfilter(raw.reshape(h, 1 + w * bpp), h, w * bpp, bpp)
    except ValueError as e:
        raise ConfigError(f"corrupt PNG ({e})", source=str(p)) from None
    if depth == 16:
        pixels = rows.view(">u2").astype(np.uint16).reshape(h, w, ch)
    else:
        pixels = rows.reshape(h, w, ch)
    return PngImage(pixels, depth, ctype_)


def read_kitti_flow(path: str | Path) -> FlowField:
    """A KITTI flow PNG (16-bit RGB: u, v scaled by 64 around 2^15, valid in blue)."""
    img = read_png(path)
    if img.bit_depth != 16 or img.colour_type != 2:
        raise ConfigError(f"not a KITTI flow PNG: expected 16-bit RGB (3 channels), got {img.bit_depth}-bit with "
                          f"{img.pixels.shape[2]} channel(s)", source=str(path))
    px = img.pixels.astype(np.float32)
    valid = img.pixels[..., 2] > 0
    flow = (px[..., :2] - 2.0**15) / 64.0
    return FlowField(np.where(valid[..., None], flow, 0.0).astype(np.float32), valid)


def read_flow(path: str | Path) -> FlowField:
    """A flow file by its extension: .flo (Middlebury) or .png (KITTI)."""
    p = Path(path)
    suffix = p.suffix.lower()
    if suffix == ".flo":
        return read_flo(p)
    if suffix == ".png":
        return read_kitti_flow(p)
    raise ConfigError(f"unknown flow file type {p.suffix!r}; expected .flo (Middlebury) or .png (KITTI)",
                      source=str(p))


def read_frame(path: str | Path) -> np.ndarray:
    """An 8-bit image as uint8 [H, W, 3] RGB (grey images repeated, alpha dropped)."""
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.is_file():
        raise ConfigError("file not found", source=str(p))
    try:
        with Image.open(p) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)
    except (UnidentifiedImageError, OSError, ValueError) as e:
        raise ConfigError(f"cannot read image ({e})", source=str(p)) from None


class FlowPair(NamedTuple):
    frame1: Path
    frame2: Path
    flow: Path


def read_pair_list(path: str | Path) -> list[FlowPair]:
    """The samples of a list file: `frame1 frame2 flow` a line, relative to the list file's folder. Every
    file must exist (checked here, so a bad list fails before any training)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", source=str(p)) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read list file ({e})", source=str(p)) from None
    pairs = []
    for n, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.split()
        if len(parts) != 3:
            raise ConfigError(f"line {n}: expected 3 paths (frame1 frame2 flow), got {len(parts)}", source=str(p))
        files = [(p.parent / f) for f in parts]
        for f in files:
            if not f.is_file():
                raise ConfigError(f"file not found (listed on line {n} of {p})", source=str(f))
        pairs.append(FlowPair(*files))
    if not pairs:
        raise ConfigError("no samples listed (lines of: frame1 frame2 flow)", source=str(p))
    return pairs


def read_pair(pair: FlowPair) -> tuple[np.ndarray, np.ndarray, FlowField]:
    """Frames and flow of one listed sample, checked to have the same size."""
    f1, f2, fl = read_frame(pair.frame1), read_frame(pair.frame2), read_flow(pair.flow)
    if f2.shape != f1.shape:
        raise ConfigError(f"frame size {f2.shape[1]}x{f2.shape[0]} differs from the first frame's "
                          f"{f1.shape[1]}x{f1.shape[0]} ({pair.frame1})", source=str(pair.frame2))
    if fl.flow.shape[:2] != f1.shape[:2]:
        raise ConfigError(f"flow size {fl.flow.shape[1]}x{fl.flow.shape[0]} differs from the frames' "
                          f"{f1.shape[1]}x{f1.shape[0]}", source=str(pair.flow))
    return f1, f2, fl
