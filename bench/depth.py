"""python -m bench.depth: the depth step's frames/s against the model's pure forward, on one device.

forward   the model alone on already-preprocessed tensors on the device (torch.inference_mode,
          synchronized): the limit of any pipeline around this model
step      what the export's depth step does per frame batch: the checkpoint's image processor,
          forward, post-processing back to the frame size, uint16 millimetres, 16-bit PNG
Both at several batch sizes, fp16 (autocast) and fp32 on CUDA. Without --model the weights are
random (no download is possible here): the throughput is the architecture's, never its depth.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np


def build_random_zoedepth(path: Path, tiny: bool = True, image_size: int = 384) -> Path:
    """A randomly initialized ZoeDepth saved with its image processor: tiny for tests, or the
    size of Intel/zoedepth-nyu-kitti (BEiT-large backbone, 384 px) for throughput."""
    import torch
    from transformers import BeitConfig, ZoeDepthConfig, ZoeDepthForDepthEstimation, ZoeDepthImageProcessor

    if tiny:
        backbone = BeitConfig(
            image_size=64,
            patch_size=16,
            num_hidden_layers=4,
            hidden_size=32,
            num_attention_heads=2,
            intermediate_size=64,
            out_indices=[1, 2, 3, 4],
            use_relative_position_bias=True,
            reshape_hidden_states=False,
            out_features=["stage1", "stage2", "stage3", "stage4"],
        )
        config = ZoeDepthConfig(
            backbone_config=backbone,
            neck_hidden_sizes=[16, 32, 32, 32],
            fusion_hidden_size=16,
            bin_embedding_dim=16,
            num_attractors=[4, 4, 4, 4],
            num_relative_features=8,
            bottleneck_features=16,
            num_patch_transformer_layers=1,
            patch_transformer_hidden_size=16,
            patch_transformer_intermediate_size=32,
            patch_transformer_num_attention_heads=2,
            bin_configurations=[{"n_bins": 8, "min_depth": 0.001, "max_depth": 10.0, "name": "nyu"}],
        )
        image_size = 64
    else:
        config = ZoeDepthConfig()  # the defaults are the released model's architecture
    torch.manual_seed(0)
    ZoeDepthForDepthEstimation(config).save_pretrained(path)
    ZoeDepthImageProcessor(
        size={"height": image_size, "width": image_size}, keep_aspect_ratio=True, ensure_multiple_of=32
    ).save_pretrained(path)
    return path


def sync(device):
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(f, device, repeat):
    f()  # warm-up
    sync(device)
    t = time.perf_counter()
    for _ in range(repeat):
        f()
    sync(device)
    return (time.perf_counter() - t) / repeat


def main(argv=None) -> int:
    import torch

    from bench.common import add_smoke
    from depth.codec import depth_to_uint16_mm, encode_depth
    from depth.model import DepthEstimator

    p = argparse.ArgumentParser(prog="python -m bench.depth", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", help="a ZoeDepth checkpoint directory (default: random weights)")
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--tiny", action="store_true", help="a tiny random model (a quick check on CPU)")
    p.add_argument("--batch-sizes", default="1,4,8,16,32")
    p.add_argument("--frame-size", type=int, default=224, help="exported frame side, pixels")
    p.add_argument("--repeat", type=int, default=5)
    add_smoke(p)
    args = p.parse_args(argv)
    if args.smoke:  # the tiny random model, on whichever device
        args.tiny, args.batch_sizes, args.frame_size, args.repeat = True, "1,2", 32, 1
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory() as tmp:
        path = args.model or str(build_random_zoedepth(Path(tmp), tiny=args.tiny or device.type == "cpu"))
        est = DepthEstimator.load(path, device=args.device)
        what = (
            "given weights"
            if args.model
            else (
                "a tiny random model"
                if args.tiny or device.type == "cpu"
                else "random weights, the released architecture"
            )
        )
        name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
        print(f"ZoeDepth ({what}) on {name}; frames {args.frame_size}x{args.frame_size}")
        print(f"{'dtype':>6s} {'batch':>5s} {'forward fr/s':>13s} {'step fr/s':>10s} {'step/forward':>12s}")
        rng = np.random.default_rng(0)
        for dtype in ["fp16", "fp32"] if device.type == "cuda" else ["fp32"]:
            for b in (int(x) for x in args.batch_sizes.split(",")):
                frames = rng.integers(0, 255, (b, args.frame_size, args.frame_size, 3), dtype=np.uint8)
                pixel_values = est.processor(images=list(frames), return_tensors="pt")["pixel_values"].to(device)
                half = dtype == "fp16"

                def forward(pixel_values=pixel_values, half=half):
                    with torch.inference_mode(), torch.autocast(device.type, dtype=torch.float16, enabled=half):
                        est.model(pixel_values=pixel_values)

                def step(frames=frames, half=half):
                    depth = est.predict(frames) if half or device.type != "cuda" else _fp32_predict(est, frames)
                    [encode_depth(d) for d in depth_to_uint16_mm(depth)]

                f, s = timed(forward, device, args.repeat), timed(step, device, args.repeat)
                print(f"{dtype:>6s} {b:5d} {b / f:13.1f} {b / s:10.1f} {f / s:12.2f}")
    print("goal: step >= 0.70 x forward on the same GPU")
    return 0


def _fp32_predict(est, frames):
    """predict() with autocast off, for the fp32 rows on CUDA."""
    import torch

    from depth.model import postprocess

    inputs = est.processor(images=list(frames), return_tensors="pt")["pixel_values"].to(est.device)
    with torch.inference_mode():
        predicted = est.model(pixel_values=inputs).predicted_depth
    return postprocess(predicted.float(), frames.shape[1:3]).cpu().numpy()


if __name__ == "__main__":
    raise SystemExit(main())
