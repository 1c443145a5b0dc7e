"""Synthetic episodes with traceable values, for tests and benchmarks of the store and the sampler.

`features()` gives a small feature set (optionally one of every dtype); `episode(features, T, seed)`
makes frames whose action/state dim 0 hold `seed * 1000 + frame` and whose image top-left pixel holds the
frame index, so a sampled window can be checked exactly against where it came from.
"""

from __future__ import annotations

import numpy as np

from vla.core.types import ACTION_NAMES, STATE_NAMES, FeatureSpec, FeatureType


def features(h: int = 16, w: int = 16, extra: bool = False) -> dict[str, FeatureSpec]:
    """Camera `front` [h, w, 3], state [15], action [7]; `extra` adds depth, seg and odd dtypes."""
    f = {
        "images/front": FeatureSpec(FeatureType.VISUAL, (h, w, 3), "uint8"),
        "state": FeatureSpec(FeatureType.STATE, (15,), "float32", STATE_NAMES),
        "action": FeatureSpec(FeatureType.ACTION, (7,), "float32", ACTION_NAMES),
    }
    if extra:
        f["depth/front"] = FeatureSpec(FeatureType.DEPTH, (h, w), "float32")
        f["seg/front"] = FeatureSpec(FeatureType.SEGMENTATION, (h, w), "int32")
        f["reward"] = FeatureSpec(FeatureType.STATE, (), "float64")
        f["step"] = FeatureSpec(FeatureType.STATE, (1,), "int64")
        f["grasped"] = FeatureSpec(FeatureType.STATE, (1,), "bool")
        f["joint_torque"] = FeatureSpec(FeatureType.STATE, (7,), "float16")
        f["ticks"] = FeatureSpec(FeatureType.STATE, (2,), "uint16")
    return f


def episode(feats: dict[str, FeatureSpec], t: int, seed: int, offset: float = 0.0) -> dict[str, np.ndarray]:
    """Frames whose values encode (seed, frame) so windows can be checked exactly."""
    rng = np.random.default_rng(seed)
    out = {}
    for key, spec in feats.items():
        shape = (t, *spec.shape)
        dt = np.dtype(spec.dtype)
        if dt == np.uint8:
            arr = rng.integers(0, 256, shape).astype(dt)
            arr[:, 0, 0, 0] = np.arange(t) % 256  # frame index in the top-left pixel
        elif dt == np.bool_:
            arr = rng.random(shape) > 0.5
        elif np.issubdtype(dt, np.integer):
            arr = rng.integers(-5 if np.issubdtype(dt, np.signedinteger) else 0, 1000, shape).astype(dt)
        else:
            arr = (rng.standard_normal(shape) + offset).astype(dt)
        if key in ("action", "state"):
            arr[:, 0] = seed * 1000 + np.arange(t)  # (episode seed, frame) in dim 0
        out[key] = arr
    return out
