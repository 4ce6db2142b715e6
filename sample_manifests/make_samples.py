"""Draw the demo's sample listing photos (rooms and exteriors) with Pillow.

Deterministic: the same script writes the same files. They are dim and colour-cast on purpose,
so the enhancement (local emulator or real service) has something to fix.

    python sample_manifests/make_samples.py
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

from PIL import Image, ImageDraw, ImageFilter

SIZE = (480, 320)
HERE = Path(__file__).resolve().parent
LISTING = HERE / "photos" / "12-oak-st"
RGB = tuple[int, int, int]
Painter = Callable[[ImageDraw.ImageDraw, random.Random], None]


def _room(draw: ImageDraw.ImageDraw, wall: RGB, floor: RGB) -> None:
    """Back wall, floor with boards, a skirting line and a window with a view."""
    width, height = SIZE
    draw.rectangle((0, 0, width, 200), fill=wall)
    draw.rectangle((0, 200, width, height), fill=floor)
    for x in range(0, width, 40):
        draw.line((x, 200, x - 60, height), fill=tuple(c - 18 for c in floor), width=2)
    draw.rectangle((0, 196, width, 202), fill=(235, 230, 220))
    draw.rectangle((330, 40, 440, 140), fill=(250, 250, 245))
    draw.rectangle((336, 46, 434, 134), fill=(150, 200, 240))
    draw.line((385, 46, 385, 134), fill=(250, 250, 245), width=4)
    draw.line((336, 90, 434, 90), fill=(250, 250, 245), width=4)


def _sofa(draw: ImageDraw.ImageDraw, x: int, color: RGB) -> None:
    draw.rounded_rectangle((x, 170, x + 170, 250), radius=12, fill=color)
    draw.rounded_rectangle(
        (x + 10, 150, x + 160, 200), radius=10, fill=tuple(c + 20 for c in color)
    )
    for leg in (x + 12, x + 150):
        draw.rectangle((leg, 250, leg + 8, 262), fill=(60, 40, 30))


def _fireplace(draw: ImageDraw.ImageDraw, x: int) -> None:
    draw.rectangle((x, 90, x + 130, 200), fill=(170, 120, 100))
    draw.rectangle((x - 10, 82, x + 140, 92), fill=(230, 225, 215))
    draw.rectangle((x + 30, 130, x + 100, 200), fill=(30, 25, 25))
    for n in range(3):
        draw.line((x + 38 + n * 20, 192, x + 58 + n * 20, 186), fill=(110, 70, 40), width=5)


def _tv(draw: ImageDraw.ImageDraw, x: int) -> None:
    draw.rectangle((x, 60, x + 150, 145), fill=(20, 20, 24))
    draw.rectangle((x + 5, 65, x + 145, 140), fill=(35, 38, 45))
    draw.rectangle((x - 20, 160, x + 170, 200), fill=(120, 90, 60))


def living_fireplace(draw: ImageDraw.ImageDraw, rng: random.Random) -> None:
    _room(draw, wall=(215, 205, 185), floor=(150, 110, 75))
    _fireplace(draw, 40)
    _sofa(draw, 230, (90, 110, 140))


def living_tv(draw: ImageDraw.ImageDraw, rng: random.Random) -> None:
    _room(draw, wall=(200, 210, 200), floor=(165, 125, 85))
    _tv(draw, 60)
    _sofa(draw, 260, (150, 100, 80))


def family_room(draw: ImageDraw.ImageDraw, rng: random.Random) -> None:
    _room(draw, wall=(225, 215, 200), floor=(140, 100, 70))
    _fireplace(draw, 20)
    _tv(draw, 190)
    draw.ellipse((120, 250, 320, 300), fill=(170, 60, 60))  # a rug


def den(draw: ImageDraw.ImageDraw, rng: random.Random) -> None:
    _room(draw, wall=(190, 200, 215), floor=(130, 95, 65))
    _sofa(draw, 40, (110, 120, 90))
    draw.rectangle((250, 120, 300, 200), fill=(100, 70, 50))  # a bookcase
    for shelf in range(3):
        y = 130 + shelf * 24
        for book in range(5):
            hue = rng.choice([(160, 40, 40), (40, 80, 140), (200, 170, 60), (60, 120, 70)])
            draw.rectangle((254 + book * 9, y, 261 + book * 9, y + 18), fill=hue)


def _exterior(draw: ImageDraw.ImageDraw, rng: random.Random, sky: RGB) -> None:
    """Sky with clouds, a lawn and trees at the edges."""
    width, height = SIZE
    for y in range(200):
        shade = tuple(min(255, c + y // 4) for c in sky)
        draw.line((0, y, width, y), fill=shade)
    for _ in range(4):
        x, y = rng.randrange(0, width), rng.randrange(10, 80)
        draw.ellipse((x, y, x + 90, y + 30), fill=(240, 240, 245))
    draw.rectangle((0, 200, width, height), fill=(80, 140, 60))
    for x in (20, 430):
        draw.rectangle((x + 18, 150, x + 30, 230), fill=(90, 60, 40))
        draw.ellipse((x - 10, 80, x + 60, 170), fill=(50, 110, 50))


def _house(draw: ImageDraw.ImageDraw, x: int, body: RGB, roof: RGB) -> None:
    draw.rectangle((x, 120, x + 240, 230), fill=body)
    draw.polygon([(x - 20, 122), (x + 120, 50), (x + 260, 122)], fill=roof)
    draw.rectangle((x + 100, 165, x + 140, 230), fill=(110, 60, 40))
    for wx in (x + 25, x + 175):
        draw.rectangle((wx, 145, wx + 40, 185), fill=(170, 200, 225))
        draw.line((wx + 20, 145, wx + 20, 185), fill=(240, 240, 240), width=3)
    draw.rectangle((x + 90, 230, x + 150, 320), fill=(180, 175, 165))  # the path


def front(draw: ImageDraw.ImageDraw, rng: random.Random) -> None:
    _exterior(draw, rng, sky=(110, 160, 220))
    _house(draw, 120, body=(220, 210, 190), roof=(120, 60, 50))


def backyard(draw: ImageDraw.ImageDraw, rng: random.Random) -> None:
    _exterior(draw, rng, sky=(120, 170, 215))
    _house(draw, 60, body=(200, 200, 210), roof=(70, 70, 80))
    draw.rectangle((330, 230, 420, 260), fill=(150, 110, 80))  # a deck
    for post in range(330, 421, 15):
        draw.line((post, 230, post, 215), fill=(130, 95, 70), width=3)


def street(draw: ImageDraw.ImageDraw, rng: random.Random) -> None:
    _exterior(draw, rng, sky=(100, 150, 210))
    _house(draw, 170, body=(190, 160, 130), roof=(90, 50, 40))
    draw.rectangle((0, 285, SIZE[0], SIZE[1]), fill=(90, 90, 95))  # the street
    for x in range(0, SIZE[0], 60):
        draw.rectangle((x, 300, x + 30, 304), fill=(230, 220, 120))


PHOTOS: dict[str, tuple[Painter, RGB]] = {
    # name -> (painter, colour cast added after dimming)
    "inside/01-living-fireplace.jpg": (living_fireplace, (18, 8, -12)),
    "inside/02-living-tv.jpg": (living_tv, (10, 12, -10)),
    "inside/03-family-room.jpg": (family_room, (20, 6, -8)),
    "inside/04-den.jpg": (den, (-6, 4, 16)),
    "outside/01-front.jpg": (front, (14, 10, -14)),
    "outside/02-backyard.jpg": (backyard, (-8, 6, 14)),
    "outside/03-street.jpg": (street, (12, 4, -10)),
}


def make_photo(painter: Painter, cast: RGB, seed: int) -> Image.Image:
    """A drawn scene, softened like a lens, then dimmed and colour-cast like a poor exposure."""
    image = Image.new("RGB", SIZE)
    painter(ImageDraw.Draw(image), random.Random(seed))
    image = image.filter(ImageFilter.GaussianBlur(1.2))
    return image.point(
        [min(255, max(0, round(v * 0.72) + cast[band])) for band in range(3) for v in range(256)]
    )


def main() -> None:
    for seed, (name, (painter, cast)) in enumerate(sorted(PHOTOS.items())):
        path = LISTING / name
        path.parent.mkdir(parents=True, exist_ok=True)
        make_photo(painter, cast, seed).save(path, "JPEG", quality=82, optimize=True)
        print(f"{path.relative_to(HERE)}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
