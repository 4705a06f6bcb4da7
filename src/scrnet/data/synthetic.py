"""A seeded generator of street-like scenes, written as a ``folder`` data set (no download, trains in minutes).

Each scene has sky, buildings with windows, vegetation, a road in perspective with lane marks, sidewalks, and
objects drawn back to front with perspective scaling: cars, people, and thin poles (2-4 px wide) carrying signs.
Colours are jittered per object, regions carry texture and the image carries sensor noise, so boundaries and thin
structures matter. The same seed gives the same files, byte for byte.
"""

from pathlib import Path

import cv2
import numpy as np

# name, colour (Cityscapes' colours where the class exists there)
CLASSES = [
    ("road", (128, 64, 128)), ("sidewalk", (244, 35, 232)), ("building", (70, 70, 70)),
    ("vegetation", (107, 142, 35)), ("sky", (70, 130, 180)), ("pole", (153, 153, 153)),
    ("sign", (220, 220, 0)), ("person", (220, 20, 60)), ("car", (0, 0, 142)),
]
ROAD, SIDEWALK, BUILDING, VEGETATION, SKY, POLE, SIGN, PERSON, CAR = range(len(CLASSES))
# base appearance of each class in the image (RGB), jittered per object
LOOK = {ROAD: (90, 88, 92), SIDEWALK: (160, 150, 140), BUILDING: (150, 120, 100), VEGETATION: (60, 110, 45),
        SKY: (150, 190, 230), POLE: (70, 70, 75), SIGN: (200, 40, 40), PERSON: (120, 60, 90), CAR: (40, 60, 160)}


def _colour(rng: np.random.Generator, cls: int, spread: int = 30) -> tuple[int, int, int]:
    return tuple(int(np.clip(c + rng.integers(-spread, spread + 1), 0, 255)) for c in LOOK[cls])


def _fill(image, mask, points, cls, colour) -> None:
    pts = np.asarray(points, dtype=np.int32).reshape(-1, 1, 2)
    cv2.fillPoly(image, [pts], colour)
    cv2.fillPoly(mask, [pts], cls)


def _rect(image, mask, x0, y0, x1, y1, cls, colour) -> None:
    cv2.rectangle(image, (int(x0), int(y0)), (int(x1), int(y1)), colour, -1)
    cv2.rectangle(mask, (int(x0), int(y0)), (int(x1), int(y1)), cls, -1)


def render_scene(height: int, width: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One scene: RGB uint8 ``H x W x 3`` and its uint8 class mask."""
    h, w = height, width
    image = np.zeros((h, w, 3), np.uint8)
    mask = np.zeros((h, w), np.uint8)
    horizon = int(h * rng.uniform(0.35, 0.55))
    # sky with a vertical gradient
    top, bottom = np.array(_colour(rng, SKY, 20)), np.array(_colour(rng, SKY, 20)) + 25
    t = np.linspace(0, 1, horizon)[:, None, None]
    image[:horizon] = np.clip(top * (1 - t) + bottom * t, 0, 255).astype(np.uint8)
    mask[:horizon] = SKY
    # ground: sidewalks on both sides, road in perspective towards a vanishing point on the horizon
    _rect(image, mask, 0, horizon, w - 1, h - 1, SIDEWALK, _colour(rng, SIDEWALK))
    vx = w * rng.uniform(0.4, 0.6)
    left, right = w * rng.uniform(-0.1, 0.25), w * rng.uniform(0.75, 1.1)
    _fill(image, mask, [(vx - 2, horizon), (vx + 2, horizon), (right, h), (left, h)], ROAD, _colour(rng, ROAD, 15))
    for k in range(6):  # dashed centre line (still road)
        a, b = k / 6, (k + 0.5) / 6
        ya, yb = horizon + (h - horizon) * a ** 1.5, horizon + (h - horizon) * b ** 1.5
        half_a, half_b = 1 + 3 * a, 1 + 3 * b
        cv2.fillPoly(image, [np.array([(vx - half_a, ya), (vx + half_a, ya), (vx + half_b, yb), (vx - half_b, yb)],
                                      np.int32)], (230, 230, 220))
    # skyline: buildings with windows, vegetation in front of some
    x = int(rng.integers(-20, 0))
    while x < w:
        bw = int(rng.integers(w // 12, w // 4))
        top_y = int(horizon - rng.uniform(0.2, 0.95) * horizon)
        colour = _colour(rng, BUILDING, 40)
        _rect(image, mask, x, top_y, x + bw, horizon, BUILDING, colour)
        win = tuple(int(c * 0.55) for c in colour)
        step = max(6, bw // 6)
        for wy in range(top_y + 4, horizon - 6, step):
            for wx in range(x + 3, x + bw - 5, step):
                cv2.rectangle(image, (wx, wy), (wx + step // 2, wy + step // 2), win, -1)
        x += bw + int(rng.integers(0, w // 20))
    for _ in range(int(rng.integers(1, 4))):
        cx, ry = int(rng.uniform(0, w)), int(rng.uniform(0.1, 0.3) * horizon)
        rx = int(rng.uniform(0.04, 0.12) * w)
        colour = _colour(rng, VEGETATION)
        cv2.ellipse(image, (cx, horizon), (rx, ry), 0, 180, 360, colour, -1)
        cv2.ellipse(mask, (cx, horizon), (rx, ry), 0, 180, 360, VEGETATION, -1)
    # objects, sorted far to near so nearer ones occlude
    objects = []
    for _ in range(int(rng.integers(2, 6))):
        objects.append((CAR, rng.uniform(0.15, 1.0)))
    for _ in range(int(rng.integers(1, 5))):
        objects.append((PERSON, rng.uniform(0.1, 1.0)))
    for _ in range(int(rng.integers(1, 4))):
        objects.append((POLE, rng.uniform(0.2, 1.0)))
    for cls, depth in sorted(objects, key=lambda o: o[1]):
        base_y = horizon + (h - horizon) * depth  # bottom of the object on the ground
        s = 0.15 + 0.85 * depth  # perspective scale
        road_l = vx + (left - vx) * depth
        road_r = vx + (right - vx) * depth
        if cls == CAR:
            cw, chh = w * 0.16 * s, h * 0.12 * s
            cx = rng.uniform(road_l + cw / 2, max(road_l + cw / 2 + 1, road_r - cw / 2))
            colour = _colour(rng, CAR, 60)
            _rect(image, mask, cx - cw / 2, base_y - chh, cx + cw / 2, base_y - chh * 0.2, CAR, colour)
            _rect(image, mask, cx - cw / 3, base_y - chh * 1.45, cx + cw / 3, base_y - chh, CAR, colour)
            cv2.rectangle(image, (int(cx - cw / 4), int(base_y - chh * 1.35)), (int(cx + cw / 4), int(base_y - chh)),
                          (40, 50, 60), -1)
            for wx in (cx - cw / 3, cx + cw / 3):
                r = max(int(chh * 0.25), 1)
                cv2.circle(image, (int(wx), int(base_y - r)), r, (20, 20, 20), -1)
                cv2.circle(mask, (int(wx), int(base_y - r)), r, CAR, -1)
        elif cls == PERSON:
            side = rng.random() < 0.5
            px = rng.uniform(0, max(road_l, 1)) if side else rng.uniform(min(road_r, w - 1), w)
            ph = h * 0.22 * s
            colour = _colour(rng, PERSON, 50)
            cv2.ellipse(image, (int(px), int(base_y - ph * 0.45)), (max(int(ph * 0.12), 1), max(int(ph * 0.4), 1)),
                        0, 0, 360, colour, -1)
            cv2.ellipse(mask, (int(px), int(base_y - ph * 0.45)), (max(int(ph * 0.12), 1), max(int(ph * 0.4), 1)),
                        0, 0, 360, PERSON, -1)
            cv2.circle(image, (int(px), int(base_y - ph * 0.9)), max(int(ph * 0.09), 1), (225, 190, 160), -1)
            cv2.circle(mask, (int(px), int(base_y - ph * 0.9)), max(int(ph * 0.09), 1), PERSON, -1)
        else:
            side = rng.random() < 0.5
            px = rng.uniform(0, max(road_l - 3, 1)) if side else rng.uniform(min(road_r + 3, w - 1), w)
            thick = int(rng.integers(2, 5))
            top_y = base_y - h * rng.uniform(0.3, 0.6) * s - 10
            _rect(image, mask, px, top_y, px + thick - 1, base_y, POLE, _colour(rng, POLE, 15))
            size = max(int(h * 0.05 * s) + 3, 4)
            sign_colour = _colour(rng, SIGN, 40)
            if rng.random() < 0.5:
                _rect(image, mask, px - size, top_y, px + size, top_y + size, SIGN, sign_colour)
            else:
                _fill(image, mask, [(px, top_y - size), (px + size, top_y + size // 2),
                                    (px - size, top_y + size // 2)], SIGN, sign_colour)
    # texture and sensor noise
    texture = cv2.GaussianBlur(rng.normal(0, 12, (h, w)).astype(np.float32), (0, 0), 1.5)
    noise = rng.normal(0, 4, (h, w, 3)).astype(np.float32)
    image = np.clip(image.astype(np.float32) + texture[..., None] + noise, 0, 255).astype(np.uint8)
    return image, mask


def generate_synthetic(out: str | Path, num_train: int = 200, num_val: int = 50, size: tuple[int, int] = (256, 512),
                       seed: int = 0) -> Path:
    """Write ``out/classes.txt`` and ``out/{train,val}/{images,masks}/NNNNN.png``; returns ``out``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "classes.txt").write_text("".join(f"{n} {r} {g} {b}\n" for n, (r, g, b) in CLASSES))
    for split_index, (split, count) in enumerate((("train", num_train), ("val", num_val))):
        image_dir, mask_dir = out / split / "images", out / split / "masks"
        image_dir.mkdir(parents=True, exist_ok=True)
        mask_dir.mkdir(parents=True, exist_ok=True)
        for i in range(count):
            rng = np.random.default_rng([seed, split_index, i])
            image, mask = render_scene(size[0], size[1], rng)
            cv2.imwrite(str(image_dir / f"{i:05d}.png"), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
            cv2.imwrite(str(mask_dir / f"{i:05d}.png"), mask)
    return out
