"""Drawing helpers shared by the report, predict and the demo: pictures of model outputs, with no report machinery
(OpenCV and NumPy only)."""

import cv2
import numpy as np


def flow_to_color(offsets: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """Offsets ``2 x H x W`` (dx, dy) as an RGB colour-wheel image: hue = direction, brightness = magnitude."""
    dx, dy = offsets[0].astype(np.float32), offsets[1].astype(np.float32)
    magnitude, angle = cv2.cartToPolar(dx, dy, angleInDegrees=True)
    top = max_magnitude or float(magnitude.max()) or 1.0
    hsv = np.zeros((*dx.shape, 3), np.uint8)
    hsv[..., 0] = (angle / 2).astype(np.uint8)  # OpenCV hue is 0..179
    hsv[..., 1] = 255
    hsv[..., 2] = np.clip(magnitude / top * 255, 0, 255).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)
