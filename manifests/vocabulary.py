"""The project's vocabularies, each one table: the registry validator, the command line and the
code that implements them all read these, so a name exists in one place.
"""

from __future__ import annotations

# How a dataset stores its gripper; transforms/gripper.py implements each (a test checks both agree).
GRIPPER_CONVENTIONS = {
    "continuous_open": "continuous in [0, 1], 1 = open; in-between values take the next decisive one (Bridge)",
    "absolute_open": "already absolute, 1 = open",
    "absolute_closed": "absolute, 1 = closed: inverted",
    "signed_open": "+1 open / -1 closed: clipped to [0, 1]",
    "signed_closed": "+1 closed / -1 open: clipped to [0, 1], inverted",
    "relative": "+1 close / -1 open commands, 0 = no change: integrated to absolute",
    "always_open": "no gripper action stored; the gripper never closes",
    "always_closed": "no gripper action stored; the gripper holds throughout",
}

ROTATION_FORMATS = {
    "euler": "roll-pitch-yaw delta, used as is",
    "quaternion": "xyzw quaternion, made roll-pitch-yaw",
    "none": "no rotation stored: zeros",
}

PROPRIO_ENCODINGS = {
    "none": "a float tensor per step",
    "zlib_float32": "zlib-compressed float32 bytes per step (kuka)",
}

INSTRUCTION_ENCODINGS = {
    "text": "UTF-8 text per step",
    "unicode_codepoints": "int32 code points per step, 0-padded (language_table)",
}

NORMALIZATIONS = {
    "bounds_q99": "clip(2 (x - q01) / (q99 - q01) - 1, -1, 1)",
    "bounds": "clip(2 (x - min) / (max - min) - 1, -1, 1)",
    "normal": "(x - mean) / std",
}

# The main job's stages, in the order they run.
STAGES = ("stats", "grids", "depth", "export")

GRID_FITS = {
    "gaussian": "edges from Gaussians fitted to the mixture (SpatialVLA)",
    "empirical": "edges at the mixture's own weighted quantiles",
}

DEPTH_BACKENDS = {
    "transformers": "transformers' ZoeDepthForDepthEstimation with the checkpoint's image processor",
    "hub": "the original ZoeDepth from a local clone through torch.hub",
}
