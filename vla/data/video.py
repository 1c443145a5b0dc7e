"""The one video module (PyAV): decoding for LeRobot import (AV1, H.264, HEVC, ...), and the one mp4 encoder,
used by the LeRobot exporter and by every episode video (evaluation, `vla demo`).

    frames = decode_video(path, start_s=2.0, end_s=4.0, size=(96, 128))   # uint8 [T, H, W, 3] RGB
    with VideoEncoder(path, fps=10, height=128, width=128, codec="libx264") as enc:
        enc.write(frame)                                                 # uint8 [H, W, 3] RGB
    write_video("out/ep0.mp4", frames, fps=10)                            # a whole episode, atomically

A frame belongs to [start_s, end_s) when its presentation time t satisfies
start_s - 0.5/fps <= t < end_s - 0.5/fps (half a frame of tolerance for rounded timestamps), which is how
a multi-episode LeRobot v3.0 file is cut into episodes. Decoding converts to RGB (and resizes, when
`size` is given) in the codec's own scaler, one frame at a time, so memory holds only the output.
`write_video` takes a list of frames for people to look at: .mp4 through `VideoEncoder` (odd sizes padded
by edge replication, H.264 when available, else MPEG-4 Part 2) or .gif (imageio); the file appears
atomically (written to a temporary sibling, then renamed). A destination that cannot take it (read-only,
no permission, disk full) is one `StorageError` line naming the video, as for every atomic writer
(vla.core.io), with no temporary file left behind.
"""

from __future__ import annotations

import contextlib
import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

import av
import numpy as np

from vla.core.io import file_mode, storage_faults

ENCODERS_BY_PREFERENCE = ("libx264", "h264", "libopenh264", "mpeg4")


def video_info(path: str | os.PathLike) -> dict:
    """Codec, frame size, rate and declared frame count of the first video stream."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video file not found: {path}")
    try:
        with av.open(str(path)) as c:
            s = c.streams.video[0]
            return {
                "codec": s.codec_context.name,
                "height": s.codec_context.height,
                "width": s.codec_context.width,
                "fps": float(s.average_rate) if s.average_rate else None,
                "frames": int(s.frames),
            }
    except (av.error.FFmpegError, IndexError) as e:
        raise ValueError(f"cannot read video {path}: {e}") from e


def decode_video(
    path: str | os.PathLike,
    start_s: float | None = None,
    end_s: float | None = None,
    size: Sequence[int] | None = None,
    fps: float | None = None,
) -> np.ndarray:
    """RGB frames of the first video stream in [start_s, end_s) (all when None): uint8 [T, H, W, 3].

    `size` = (H, W) resizes while decoding; `fps` sets the half-frame tolerance (default: the stream's rate).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"video file not found: {path}")
    frames: list[np.ndarray] = []
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            rate = fps or (float(stream.average_rate) if stream.average_rate else 30.0)
            tol = 0.5 / rate
            lo = None if start_s is None else start_s - tol
            hi = None if end_s is None else end_s - tol
            if lo is not None and lo > 0:
                # seek lands on the key frame at or before lo; frames before lo are skipped below
                container.seek(int(max(lo, 0.0) / stream.time_base), stream=stream, backward=True)
            kw = {"format": "rgb24"}
            if size is not None:
                kw.update(height=int(size[0]), width=int(size[1]))
            for frame in container.decode(stream):
                t = float(frame.pts * stream.time_base) if frame.pts is not None else float(frame.time or 0.0)
                if lo is not None and t < lo:
                    continue
                if hi is not None and t >= hi:
                    break
                frames.append(frame.to_ndarray(**kw))
    except av.error.FFmpegError as e:
        raise ValueError(f"cannot decode video {path}: {e}") from e
    if not frames:
        h, w = (int(size[0]), int(size[1])) if size is not None else (0, 0)
        return np.zeros((0, h, w, 3), dtype=np.uint8)
    return np.stack(frames)


def pick_encoder(preferred: str | None = None) -> str:
    """`preferred` if this PyAV build can encode with it, else the first available H.264/MPEG-4 encoder."""
    names = [preferred] if preferred else []
    for name in [*names, *ENCODERS_BY_PREFERENCE]:
        try:
            av.codec.Codec(name, "w")
            return name
        except (av.error.FFmpegError, ValueError):
            continue
    raise ValueError(f"no video encoder available (tried {[*names, *ENCODERS_BY_PREFERENCE]})")


class VideoEncoder:
    """Writes RGB frames [H, W, 3] uint8 to an mp4 at a constant rate (pts = frame number).

    `crf` applies to the encoders that take it (x264, x265, SVT-AV1); `preset` (e.g. "veryfast") and `gop`
    (key-frame interval; short: cheap seeks into multi-episode files) are passed on when given."""

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float,
        height: int,
        width: int,
        codec: str | None = "libx264",
        crf: int = 18,
        pix_fmt: str = "yuv420p",
        preset: str | None = None,
        gop: int | None = None,
    ) -> None:
        if pix_fmt == "yuv420p" and (height % 2 or width % 2):
            raise ValueError(f"{path}: yuv420p video needs even height and width, got {height}x{width}")
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.codec = pick_encoder(codec)
        self.height, self.width = int(height), int(width)
        self._container = av.open(str(self.path), mode="w")
        rate = int(round(fps))
        self._stream = self._container.add_stream(self.codec, rate=rate)
        self._stream.height, self._stream.width, self._stream.pix_fmt = self.height, self.width, pix_fmt
        options = {"crf": str(int(crf))} if self.codec in ("libx264", "libx265", "libsvtav1") else {}
        if preset is not None:
            options["preset"] = preset
        if gop is not None:
            options["g"] = str(int(gop))
        if options:
            self._stream.options = options
        self.frames = 0
        self.bytes_out = 0  # encoded bytes muxed so far (lags the input by the encoder's lookahead)

    def write(self, frame: np.ndarray) -> None:
        arr = np.ascontiguousarray(frame)
        if arr.shape != (self.height, self.width, 3) or arr.dtype != np.uint8:
            raise ValueError(
                f"{self.path}: frame must be uint8 [{self.height}, {self.width}, 3], "
                f"got {arr.dtype} {arr.shape}"
            )
        vf = av.VideoFrame.from_ndarray(arr, format="rgb24")
        vf.pts = self.frames
        for packet in self._stream.encode(vf):
            self.bytes_out += packet.size
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        """Flush the encoder and close the file (also when flushing fails, e.g. on a full disk)."""
        if self._container is None:
            return
        container, self._container = self._container, None
        try:
            for packet in self._stream.encode():
                container.mux(packet)
        except BaseException:
            with contextlib.suppress(Exception):
                container.close()
            raise
        container.close()

    def __enter__(self) -> VideoEncoder:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


# ---- whole episodes, for people to look at --------------------------------------------------------------
VIDEO_SUFFIXES = (".mp4", ".gif")


def _check_frames(frames: Sequence[np.ndarray]) -> list[np.ndarray]:
    if len(frames) == 0:
        raise ValueError("frames: expected at least one frame")
    out = []
    shape = np.asarray(frames[0]).shape
    for i, f in enumerate(frames):
        arr = np.asarray(f)
        if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
            raise ValueError(f"frames[{i}]: expected uint8 [H, W, 3], got {arr.dtype} {arr.shape}")
        if arr.shape != shape:
            raise ValueError(f"frames[{i}]: expected shape {shape} like frame 0, got {arr.shape}")
        out.append(arr)
    return out


def _pad_even(frame: np.ndarray) -> np.ndarray:
    """yuv420p needs even sizes: pad by edge replication (a copy; the input is untouched)."""
    h, w = frame.shape[:2]
    return np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")


def _write_gif(tmp: str, frames: list[np.ndarray], fps: int) -> None:
    """Pillow writes the GIF into a file we open and close (imageio's writer retried a failed flush from
    its finaliser, a second traceback after a full disk, and kept the file open)."""
    from PIL import Image

    images = [Image.fromarray(f) for f in frames]
    with open(tmp, "wb") as fh:
        images[0].save(
            fh, format="GIF", save_all=True, append_images=images[1:], duration=1000.0 / fps, loop=0
        )


def write_video(path: str | os.PathLike, frames: Sequence[np.ndarray], fps: int = 10) -> Path:
    """Write frames (uint8 [H,W,3] each) to `path` (.mp4 or .gif), atomically. Returns the path."""
    path = Path(path)
    if path.suffix.lower() not in VIDEO_SUFFIXES:
        raise ValueError(f"video path {path}: expected a suffix in {VIDEO_SUFFIXES}")
    if not (isinstance(fps, (int, float)) and math.isfinite(fps) and fps > 0):
        raise ValueError(f"fps: expected a finite number > 0, got {fps!r}")
    checked = _check_frames(frames)
    with storage_faults(path):
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
        os.fchmod(fd, file_mode())  # mkstemp makes 0600; a video gets the user's umask like any new file
        os.close(fd)
        try:
            if path.suffix.lower() == ".mp4":
                h, w = _pad_even(checked[0]).shape[:2]
                with VideoEncoder(tmp, int(fps), h, w, codec=None, crf=20, preset="veryfast") as enc:
                    for f in checked:
                        enc.write(_pad_even(f))
            else:
                _write_gif(tmp, checked, int(fps))
            os.replace(tmp, path)
        except BaseException:  # a storage fault of the encoder (PyAV's errors are OSErrors) becomes one line
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
    return path
