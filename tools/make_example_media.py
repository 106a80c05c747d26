"""Write the small sample files the action examples use (examples/media/).

Every action example that takes an image or audio file points at one of these, so
the examples run end to end against the sandbox and the docs show real inputs. The
files are drawn, not downloaded: the same script always writes the same pictures
and sounds, and each stays within the limits of the operations that use it.

Usage: python tools/make_example_media.py
"""

from __future__ import annotations

import math
import random
import struct
import sys
import wave
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

ROOT = Path(__file__).resolve().parents[1]
MEDIA = ROOT / "examples" / "media"


def _vertical_gradient(
    size: tuple[int, int], top: tuple[int, int, int], bottom: tuple[int, int, int]
) -> Image.Image:
    width, height = size
    image = Image.new("RGB", size)
    draw = ImageDraw.Draw(image)
    for y in range(height):
        t = y / max(height - 1, 1)
        color = tuple(round(a + (b - a) * t) for a, b in zip(top, bottom, strict=True))
        draw.line([(0, y), (width, y)], fill=color)
    return image


def product_photo(size: tuple[int, int] = (512, 512)) -> Image.Image:
    """A studio shot: a mug on a table against a soft backdrop, slightly noisy like
    a real photo (the noise is seeded, so the file never changes)."""
    width, height = size
    image = _vertical_gradient(size, (214, 222, 232), (150, 160, 175))
    draw = ImageDraw.Draw(image)
    table_top = int(height * 0.68)
    draw.rectangle([0, table_top, width, height], fill=(121, 86, 60))
    draw.ellipse([width * 0.22, table_top - 18, width * 0.78, table_top + 30], fill=(90, 64, 45))
    # The mug: body, rim and handle.
    left, right = int(width * 0.33), int(width * 0.63)
    top = int(height * 0.36)
    draw.rectangle([left, top, right, table_top], fill=(196, 58, 48))
    draw.ellipse([left, top - 14, right, top + 14], fill=(225, 92, 80))
    draw.ellipse([left + 8, top - 8, right - 8, top + 8], fill=(70, 30, 25))
    draw.ellipse([right - 10, top + 40, right + 50, top + 120], outline=(196, 58, 48), width=14)
    # A window-light highlight on the mug.
    draw.rectangle([left + 18, top + 20, left + 30, table_top - 20], fill=(236, 140, 128))
    image = image.filter(ImageFilter.GaussianBlur(1.2))
    rng = random.Random(20240501)
    noise = Image.new("L", size)
    noise.putdata([128 + int(rng.gauss(0, 6)) for _ in range(width * height)])
    return Image.composite(
        image, image.point(lambda v: min(255, v + 6)), noise.point(lambda v: 255 if v >= 128 else 0)
    )


def mug_mask(size: tuple[int, int] = (512, 512)) -> Image.Image:
    """White where the mug is (the area to change), black elsewhere."""
    width, height = size
    mask = Image.new("L", size, 0)
    draw = ImageDraw.Draw(mask)
    draw.rectangle(
        [int(width * 0.31), int(height * 0.32), int(width * 0.75), int(height * 0.70)], fill=255
    )
    return mask


def sketch(size: tuple[int, int] = (512, 512)) -> Image.Image:
    """A rough pencil drawing of a house on a hill."""
    width, height = size
    image = Image.new("L", size, 250)
    draw = ImageDraw.Draw(image)
    draw.arc([-width * 0.3, height * 0.55, width * 1.3, height * 1.5], 180, 360, fill=40, width=3)
    draw.rectangle([width * 0.35, height * 0.42, width * 0.65, height * 0.66], outline=40, width=3)
    draw.polygon(
        [
            (width * 0.32, height * 0.42),
            (width * 0.5, height * 0.26),
            (width * 0.68, height * 0.42),
        ],
        outline=40,
    )
    draw.rectangle([width * 0.46, height * 0.54, width * 0.54, height * 0.66], outline=40, width=2)
    draw.ellipse([width * 0.75, height * 0.1, width * 0.88, height * 0.23], outline=40, width=2)
    return image.convert("RGB")


def style_reference(size: tuple[int, int] = (512, 512)) -> Image.Image:
    """Bold diagonal colour bands, like a poster print: a clear style to borrow."""
    width, height = size
    image = Image.new("RGB", size)
    draw = ImageDraw.Draw(image)
    palette = [(242, 196, 56), (230, 112, 48), (196, 54, 80), (82, 44, 110), (30, 90, 140)]
    band = 64
    for i in range(-height // band, (width + height) // band + 1):
        x = i * band
        draw.polygon(
            [(x, 0), (x + band, 0), (x + band - height, height), (x - height, height)],
            fill=palette[i % len(palette)],
        )
    return image.filter(ImageFilter.GaussianBlur(2))


def landscape(size: tuple[int, int] = (1024, 576)) -> Image.Image:
    """A wide valley at sunset (image to video accepts 1024x576, 576x1024 or 768x768)."""
    width, height = size
    image = _vertical_gradient(size, (250, 170, 110), (120, 90, 140))
    draw = ImageDraw.Draw(image)
    draw.ellipse([width * 0.62, height * 0.3, width * 0.72, height * 0.48], fill=(255, 226, 160))
    points: list[tuple[float, float]] = [(0, height)]
    for x in range(0, width + 1, 16):
        points.append((x, height * 0.62 + 40 * math.sin(x / 90) + 20 * math.sin(x / 31)))
    points.append((width, height))
    draw.polygon(points, fill=(52, 70, 60))
    return image.filter(ImageFilter.GaussianBlur(1))


def guitar_loop(seconds: float = 6.0, rate: int = 8000) -> bytes:
    """Mono 16-bit PCM: a plucked A-minor arpeggio, four notes a second."""
    notes = [220.0, 261.63, 329.63, 261.63]
    frames = bytearray()
    for n in range(int(seconds * rate)):
        t = n / rate
        note = notes[int(t * 4) % len(notes)]
        since = t % 0.25
        value = 0.4 * math.exp(-6 * since) * math.sin(2 * math.pi * note * t)
        frames += struct.pack("<h", int(value * 32767))
    return bytes(frames)


def write_wav(path: Path, pcm: bytes, rate: int = 8000) -> None:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(pcm)


def main() -> int:
    MEDIA.mkdir(parents=True, exist_ok=True)
    product_photo().save(MEDIA / "product.png", optimize=True)
    mug_mask().save(MEDIA / "mask.png", optimize=True)
    sketch().save(MEDIA / "sketch.png", optimize=True)
    style_reference().save(MEDIA / "style.png", optimize=True)
    landscape().save(MEDIA / "landscape.jpg", quality=85)
    write_wav(MEDIA / "loop.wav", guitar_loop())
    for path in sorted(MEDIA.iterdir()):
        print(f"{path.relative_to(ROOT)}: {path.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
