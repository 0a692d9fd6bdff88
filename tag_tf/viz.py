"""Pictures of task affinity.

>>> import numpy as np
>>> image = affinity_image(np.array([[1.0, -1.0], [0.0, np.nan]]), cell=4)
>>> image.shape, image.dtype.name
((8, 8, 3), 'uint8')
>>> image[0, 0].tolist(), image[0, 4].tolist(), image[4, 0].tolist()   # red, blue, white
([178, 24, 43], [33, 102, 172], [255, 255, 255])
"""

from __future__ import annotations

import numpy as np

# The ends of a diverging colour map (ColorBrewer RdBu): negative -> blue, 0 -> white, positive -> red.
_RED, _WHITE, _BLUE = np.array([178, 24, 43]), np.array([255, 255, 255]), np.array([33, 102, 172])
_MISSING = np.array([128, 128, 128])


def affinity_image(matrix: np.ndarray, cell: int = 16) -> np.ndarray:
    """uint8 [n·cell, n·cell, 3]: each entry of `matrix` as a square, coloured on a diverging map
    centred at 0 and scaled by the largest |entry|; NaN (no sample) is grey. Rows are sources."""
    matrix = np.asarray(matrix, np.float64)
    finite = np.isfinite(matrix)
    scale = np.abs(matrix[finite]).max() if finite.any() and np.abs(matrix[finite]).max() > 0 else 1.0
    t = np.clip(np.where(finite, matrix, 0.0) / scale, -1.0, 1.0)[..., None]
    colours = np.where(t >= 0, _WHITE + t * (_RED - _WHITE), _WHITE - t * (_BLUE - _WHITE))
    colours = np.where(finite[..., None], colours, _MISSING)
    return np.repeat(np.repeat(np.round(colours).astype(np.uint8), cell, axis=0), cell, axis=1)
