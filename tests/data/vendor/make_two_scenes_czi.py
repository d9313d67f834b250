"""Write ``two_scenes_different_sizes.czi``: 2 scenes of different sizes, 2 channels, 2 timepoints.

Run once with pylibCZIrw 6.1.0 (Zeiss, LGPL-3.0; not a dependency of overnight):
``python make_two_scenes_czi.py two_scenes_different_sizes.czi``. Scene 0 is 40 x 64 px,
scene 1 is 56 x 48 px (Y x X), placed apart in the plane; pixel (y, x) of scene s,
channel c, timepoint t holds ``1000 * s + 100 * c + 10 * t + (y + x) % 7``, so a test can
check each part it reads.
"""

import sys

import numpy as np
from pylibCZIrw import czi as pyczi

SHAPES = {0: (40, 64), 1: (56, 48)}
LOCATIONS = {0: (0, 0), 1: (200, 0)}


def plane(scene: int, c: int, t: int) -> np.ndarray:
    h, w = SHAPES[scene]
    y, x = np.mgrid[:h, :w]
    return (1000 * scene + 100 * c + 10 * t + (y + x) % 7).astype(np.uint16)


def main(out: str) -> None:
    with pyczi.create_czi(out, exist_ok=True) as czi:
        for scene in SHAPES:
            for t in range(2):
                for c in range(2):
                    czi.write(
                        plane(scene, c, t)[..., np.newaxis],
                        location=LOCATIONS[scene],
                        plane={"C": c, "T": t, "Z": 0},
                        scene=scene,
                    )
        czi.write_metadata(
            "two scenes", channel_names={0: "DAPI", 1: "GFP"}, scale_x=0.5e-6, scale_y=0.5e-6
        )


if __name__ == "__main__":
    main(sys.argv[1])
