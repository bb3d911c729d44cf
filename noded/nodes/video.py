"""Video nodes: ``video_source`` (synthetic RGB frames) and ``gray`` (grayscale and
downscale with numpy, written straight into a shared-memory loan).

``VideoSource`` sends ``frames`` RGB24 frames of ``width`` x ``height`` (default 1080p)
at ``fps`` (0: as fast as the consumers take them), each a moving colour gradient drawn
into a loan (no copy), with ``timestamp_ns`` = time.monotonic_ns() at its send; then
ends the stream.

``Gray`` takes RGB24/BGR24 (or RGBA32) VIDEO frames and sends GRAY8 frames downscaled by
``scale`` (an integer factor: every scale-th pixel of every scale-th row), with the
ITU-R BT.601 luma weights in 8-bit fixed point: (77 R + 150 G + 29 B) >> 8.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from noded.contract.wire import Kind, PixelFormat
from noded.errors import ParamError
from noded.node import Context, Node
from noded.nodes.params import Param, check_declared
from noded.nodes.streams import StreamNode, send_end

_WEIGHTS = {PixelFormat.RGB24: (77, 150, 29), PixelFormat.BGR24: (29, 150, 77), PixelFormat.RGBA32: (77, 150, 29)}


def to_gray(frame: np.ndarray, scale: int, out: np.ndarray, pixel_format: PixelFormat = PixelFormat.RGB24) -> None:
    """Luma of ``frame`` (h, w, 3 or 4) uint8, downscaled by ``scale``, into ``out``."""
    wr, wg, wb = _WEIGHTS[pixel_format]
    view = frame[::scale, ::scale]
    acc = view[..., 0].astype(np.uint16) * wr
    acc += view[..., 1].astype(np.uint16) * wg
    acc += view[..., 2].astype(np.uint16) * wb
    np.right_shift(acc, 8, out=acc)
    out[...] = acc


class VideoSource(Node):
    SUMMARY = "Sends synthetic RGB frames on port out (a test pattern), then END_OF_STREAM."
    PARAMS = {
        "width": Param(int, 1920, "Frame width, in pixels."),
        "height": Param(int, 1080, "Frame height, in pixels."),
        "frames": Param(int, 60, "How many frames to send."),
        "fps": Param(float, 30.0, "Frames per second."),
    }
    EXAMPLE = 'class = "video_source"\nparams = { width = 1280, height = 720, frames = 300, fps = 30.0 }'

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        p = check_declared(self, self.PARAMS)
        if p["width"] < 1 or p["height"] < 1:
            raise ParamError(f"VideoSource ({self.node_id}): width and height must be >= 1")
        self.width, self.height, self.frames, self.fps = p["width"], p["height"], p["frames"], p["fps"]

    def setup(self, ctx: Context) -> None:
        self.ramp_x = np.linspace(0, 255, self.width, dtype=np.float32).astype(np.uint8)
        self.ramp_y = np.linspace(0, 255, self.height, dtype=np.float32).astype(np.uint8)

    def run(self, ctx: Context) -> None:
        start = time.monotonic()
        for i in range(self.frames):
            if self.fps > 0:
                delay = start + i / self.fps - time.monotonic()
                if delay > 0 and ctx.stopping.wait(delay):
                    return
            frame = ctx.loan(
                "out", (self.height, self.width, 3), np.uint8, kind=Kind.VIDEO, pixel_format=PixelFormat.RGB24
            )
            frame[..., 0] = self.ramp_x + np.uint8(i * 4 % 256)  # wraps: a moving gradient
            frame[..., 1] = self.ramp_y[:, None]
            frame[..., 2] = np.uint8(i * 8 % 256)
            ctx.send("out", frame, timestamp_ns=time.monotonic_ns())
        send_end(ctx)


class Gray(StreamNode):
    SUMMARY = "Turns each RGB frame into a grayscale one, scaled down; frames on port out."
    PARAMS = {"scale": Param(int, 2, "Divide width and height by this.")}
    EXAMPLE = 'class = "gray"\nparams = { scale = 2 }\ninputs = ["camera.out"]'
    kinds = frozenset({Kind.VIDEO})

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.scale: int = check_declared(self, self.PARAMS)["scale"]
        if self.scale < 1:
            raise ParamError(f"Gray ({self.node_id}): scale must be >= 1, got {self.scale}")

    def handle(self, msg: Any) -> None:
        fmt = PixelFormat(msg.pixel_format)
        frame = msg.array
        if fmt not in _WEIGHTS or frame.ndim != 3:
            raise ValueError(f"gray takes RGB24, BGR24 or RGBA32 frames, got {fmt.name} {frame.shape}")
        h, w = -(-frame.shape[0] // self.scale), -(-frame.shape[1] // self.scale)
        out = self.ctx.loan(
            "out", (h, w), np.uint8, kind=Kind.VIDEO, pixel_format=PixelFormat.GRAY8, timestamp_ns=msg.timestamp_ns
        )
        to_gray(frame, self.scale, out, fmt)
        self.ctx.send("out", out, kind=Kind.VIDEO, pixel_format=PixelFormat.GRAY8, timestamp_ns=msg.timestamp_ns)
