"""ZoeDepth metric depth for exported frames (stored by depth.codec).

Backends: transformers' `ZoeDepthForDepthEstimation` with the checkpoint's own image
processor (default), or the original ZoeDepth through `torch.hub` (`--depth-backend hub`,
for parity with the paper's code). Weights come from a local directory or the Hugging Face
cache, never from the network. Without weights, `DepthWeightsNotFound` says where it looked; on
an install without torch or transformers (the worker install), `DepthNotInstalled` says what to
install: the run reports depth as skipped, it never writes made-up depth.
"""

from __future__ import annotations

import hashlib
import math
import os
from pathlib import Path

import numpy as np

from manifests.extras import install_hint, missing
from storage import files

DEFAULT_MODEL = "Intel/zoedepth-nyu-kitti"
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin")


class DepthUnavailable(Exception):
    """Depth cannot run here; the message says why."""


class DepthWeightsNotFound(DepthUnavailable):
    """No ZoeDepth weights where we looked; the message says where."""


class DepthNotInstalled(DepthUnavailable):
    """The packages the depth model runs on are not installed; the message says which and how."""


def require_packages(backend: str = "transformers") -> None:
    """DepthNotInstalled unless torch (and transformers, for the default backend) can be imported."""
    absent = [m for m in missing("depth") if backend != "hub" or m == "torch"]
    if absent:
        raise DepthNotInstalled(
            f"{' and '.join(absent)} not installed (the worker install has no depth): install the depth "
            f"extra, {install_hint('depth')} (on a CPU-only machine a CPU torch first: README, Installs)"
        )


# ---------------------------------------------------------------- finding weights


def find_weights(model_dir: str | None = None, model_id: str = DEFAULT_MODEL) -> Path:
    """A local checkpoint directory: the one given, else the HF cache's snapshot of model_id."""
    if model_dir:
        path = Path(model_dir)
        if not (path / "config.json").exists() or not any((path / w).exists() for w in WEIGHT_FILES):
            raise DepthWeightsNotFound(
                f"no ZoeDepth checkpoint in '{model_dir}' (needs config.json and {' or '.join(WEIGHT_FILES)})"
            )
        return path
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(model_id, local_files_only=True))
    except Exception:
        cache = os.environ.get("HF_HUB_CACHE") or os.path.join(
            os.environ.get("HF_HOME", os.path.expanduser("~/.cache/huggingface")), "hub"
        )
        raise DepthWeightsNotFound(
            f"no ZoeDepth weights: --depth-model not given and '{model_id}' is not in the Hugging Face cache ({cache})"
        ) from None


def weights_fingerprint(path: Path) -> str:
    return files.sha256_file(*(str(Path(path) / n) for n in WEIGHT_FILES if (Path(path) / n).exists()))


# ---------------------------------------------------------------- the estimator


def _device(device: str | None):
    import torch

    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


class DepthEstimator:
    """Batched metric depth at the input size; fp16 autocast on CUDA, fp32 on CPU."""

    def __init__(self, model, processor, device, name: str, weights_sha256: str, backend: str = "transformers"):
        self.model, self.processor, self.device = model, processor, device
        self.name, self.weights_sha256, self.backend = name, weights_sha256, backend

    @classmethod
    def load(
        cls,
        model_dir: str | None = None,
        backend: str = "transformers",
        device: str | None = None,
        model_id: str = DEFAULT_MODEL,
    ) -> DepthEstimator:
        if backend == "hub":
            return cls._load_hub(model_dir, device)
        path = find_weights(model_dir, model_id)  # weights first: a run without them needs no torch
        require_packages(backend)
        dev = _device(device)
        from transformers import AutoImageProcessor, ZoeDepthForDepthEstimation

        model = ZoeDepthForDepthEstimation.from_pretrained(path, local_files_only=True).to(dev).eval()
        processor = AutoImageProcessor.from_pretrained(path, local_files_only=True)
        return cls(model, processor, dev, model_dir or model_id, weights_fingerprint(path))

    @classmethod
    def _load_hub(cls, repo_dir: str | None, device: str | None) -> DepthEstimator:
        """The original ZoeDepth (isl-org/ZoeDepth) from a local clone, with its weights in the torch
        hub cache. Not exercised by the tests: no clone or weights can be fetched on the build machines."""
        if not repo_dir or not (Path(repo_dir) / "hubconf.py").exists():
            raise DepthWeightsNotFound(
                f"--depth-backend hub needs --depth-model pointing at a local ZoeDepth "
                f"clone with hubconf.py (got {repo_dir!r})"
            )
        require_packages("hub")
        import torch

        dev = _device(device)
        try:
            model = torch.hub.load(repo_dir, "ZoeD_NK", source="local", pretrained=True).to(dev).eval()
        except (OSError, RuntimeError) as e:
            raise DepthWeightsNotFound(f"torch.hub could not load ZoeD_NK from '{repo_dir}': {e}") from None
        digest = hashlib.sha256(b"".join(p.detach().cpu().numpy().tobytes() for p in model.parameters())).hexdigest()
        return cls(model, None, dev, f"ZoeD_NK ({repo_dir})", digest, backend="hub")

    def describe(self) -> dict:
        size = getattr(self.processor, "size", None) if self.processor is not None else None
        return {
            "model": self.name,
            "backend": self.backend,
            "weights_sha256": self.weights_sha256,
            "input_size": dict(size) if size else None,
            "units": "metres before storage",
        }

    def predict(self, images: np.ndarray) -> np.ndarray:
        """uint8 [B, H, W, 3] -> float32 metres [B, H, W] at the input size."""
        import torch

        images = np.asarray(images)
        b, h, w = images.shape[:3]
        with (
            torch.inference_mode(),
            torch.autocast(self.device.type, dtype=torch.float16, enabled=self.device.type == "cuda"),
        ):
            if self.backend == "hub":
                x = torch.from_numpy(images).to(self.device).permute(0, 3, 1, 2).float() / 255.0
                return self.model.infer(x)[:, 0].float().cpu().numpy()
            inputs = self.processor(images=list(images), return_tensors="pt")
            pixel_values = inputs["pixel_values"].to(self.device)
            predicted = self.model(pixel_values=pixel_values).predicted_depth
        return postprocess(predicted.float(), (h, w), getattr(self.processor, "do_pad", True)).cpu().numpy()


def postprocess(predicted, source_hw: tuple[int, int], remove_padding: bool = True):
    """The ZoeDepth processor's own post-processing (bicubic resize to the padded source size, then
    the padding that the processor added is cut away), done with torch alone."""
    import torch.nn.functional as F

    h, w = source_hw
    pad_h = int(math.sqrt(h / 2) * 3) if remove_padding else 0
    pad_w = int(math.sqrt(w / 2) * 3) if remove_padding else 0
    depth = F.interpolate(
        predicted[:, None], size=(h + 2 * pad_h, w + 2 * pad_w), mode="bicubic", align_corners=False, antialias=False
    )[:, 0]
    return depth[:, pad_h : pad_h + h, pad_w : pad_w + w]
