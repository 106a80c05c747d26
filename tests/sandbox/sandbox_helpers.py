"""Helpers shared by the sandbox tests: a fake clock and sleep, sample media."""

from __future__ import annotations

import io

from PIL import Image

from stability_connector.sandbox.media import fingerprint_of, render_audio

KEY = "sk-sandbox-test-0123456789abcdef"


class FakeClock:
    """A clock tests move by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeSleep:
    """An async sleep that records the delays and advances a clock instead of waiting."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)
        self.clock.advance(seconds)


def image_bytes(width: int, height: int, fmt: str = "PNG", mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (width, height), (90, 140, 200)).save(buffer, format=fmt)
    return buffer.getvalue()


def wav_bytes(seconds: float) -> bytes:
    return render_audio(seconds, fingerprint_of("input", seconds), "wav")
