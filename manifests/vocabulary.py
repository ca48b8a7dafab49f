"""The project's vocabularies, each one table: the registry validator, the command line and the
code that implements them all read these, so a name exists in one place.
"""

from __future__ import annotations

# How a dataset stores its gripper; transforms/gripper.py implements each (a test checks both agree).
# The formulas are the public OXE transforms' (OpenVLA, Octo, SpatialVLA): only continuous_open and
# relative binarize; the others keep the stored value (continuous stays continuous).
GRIPPER_CONVENTIONS = {
    "continuous_open": "Bridge's binarize: > 0.95 -> 1, < 0.05 -> 0, in between: the next decisive value, "
    "after the last one: the last raw value",
    "absolute_open": "x as stored, 1 = open",
    "absolute_closed": "1 - x (no clip)",
    "signed_open": "clip(x, 0, 1) (+1 open / -1 closed)",
    "signed_closed": "1 - clip(x, 0, 1) (+1 closed / -1 open)",
    "relative": "+1 close / -1 open commands (|x| <= 0.1: no change) integrated to 0/1",
    "always_open": "1: no gripper action stored, the gripper never closes",
    "always_closed": "0: no gripper action stored, the gripper holds throughout",
}

# How a dataset's action is encoded: which dimensions are absolute (an action chunk past an episode's
# end repeats them) and which relative (padded with 0, the normalized zero), as the public configs say.
ACTION_ENCODINGS = {
    "eef_delta": {"absolute_mask": [False] * 6 + [True], "about": "xyz and rpy deltas, absolute gripper"},
}

# Rules that keep a step for action chunks but never sample it for training.
SAMPLE_FILTERS = {
    "zero_movement": "steps whose six movement dimensions are all within 1e-5 of the normalized zero (DROID)",
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
