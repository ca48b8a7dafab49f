"""The command lines and the orchestration of the main job's stages."""

__version__ = "0.1.0"  # the tool's version, recorded in every manifest and grid (pyproject reads it here)
