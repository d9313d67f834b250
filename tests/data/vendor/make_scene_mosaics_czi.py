"""Write ``scene_mosaics.czi``: 2 scenes, each a mosaic of tiles; 2 channels, 2 timepoints.

Run once with pylibCZIrw 6.1.0 (Zeiss, LGPL-3.0; not a dependency of overnight):
``python make_scene_mosaics_czi.py scene_mosaics.czi``. Scene 0 is a 2 x 2 mosaic of
16 x 24 px tiles (Y x X) at (x, y) = (10, 20), so 32 x 48 px; scene 1 a 1 x 2 (rows x
columns) mosaic of 24 x 20 px tiles at (300, 100), so 24 x 40 px. Tiles touch and do not
overlap; the scenes are apart in the plane. Pixel (y, x) of a scene (measured from the
scene's top-left corner) of scene s at channel c, timepoint t holds
``20000 * s + 10000 * c + 5000 * t + 100 * y + x`` (y < 32, x < 48: every value says where it
belongs), so a test can check that every pixel lands in the right place.
"""

import sys

import numpy as np
from pylibCZIrw import czi as pyczi

#: scene -> (tile rows, tile columns, tile height, tile width, scene x, scene y), px.
MOSAICS = {0: (2, 2, 16, 24, 10, 20), 1: (1, 2, 24, 20, 300, 100)}


def scene_plane(scene: int, c: int, t: int) -> np.ndarray:
    """The whole stitched plane of one scene, channel and timepoint (uint16, Y x X)."""
    rows, cols, th, tw, _, _ = MOSAICS[scene]
    y, x = np.mgrid[: rows * th, : cols * tw]
    return (20000 * scene + 10000 * c + 5000 * t + 100 * y + x).astype(np.uint16)


def main(out: str) -> None:
    with pyczi.create_czi(out, exist_ok=True) as czi:
        for scene, (rows, cols, th, tw, sx, sy) in MOSAICS.items():
            for t in range(2):
                for c in range(2):
                    whole = scene_plane(scene, c, t)
                    for r in range(rows):
                        for q in range(cols):
                            tile = whole[r * th : (r + 1) * th, q * tw : (q + 1) * tw]
                            czi.write(
                                np.ascontiguousarray(tile)[..., np.newaxis],
                                location=(sx + q * tw, sy + r * th),
                                plane={"C": c, "T": t, "Z": 0},
                                scene=scene,
                            )
        czi.write_metadata(
            "scene mosaics", channel_names={0: "DAPI", 1: "GFP"}, scale_x=0.5e-6, scale_y=0.5e-6
        )


if __name__ == "__main__":
    main(sys.argv[1])
