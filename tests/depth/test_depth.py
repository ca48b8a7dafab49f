"""Depth on CPU with a tiny, randomly initialized ZoeDepth that the test builds.

Its output is not depth (random weights); the tests check the machinery: loading through the
real code, shapes, units, batching, the Beam step and its accelerator hint, the export column.
"""

import json

import numpy as np
import pytest

from depth.codec import decode_depth, depth_to_uint16_mm, encode_depth, uint16_mm_to_depth
from depth.ego3d import backproject, pool_to_patches
from depth.model import DepthEstimator, DepthWeightsNotFound
from transforms.frames import scale_intrinsics


@pytest.fixture(scope="module")
def tiny_zoedepth(tmp_path_factory):
    from bench.depth import build_random_zoedepth

    return build_random_zoedepth(tmp_path_factory.mktemp("tiny_zoedepth"), tiny=True)


def frames(n, h=40, w=48, seed=0):
    return np.random.default_rng(seed).integers(0, 255, (n, h, w, 3), dtype=np.uint8)


def test_loads_through_the_real_code_and_keeps_the_input_size(tiny_zoedepth):
    est = DepthEstimator.load(str(tiny_zoedepth), device="cpu")
    out = est.predict(frames(3))
    assert out.shape == (3, 40, 48) and out.dtype == np.float32 and np.isfinite(out).all()
    info = est.describe()
    assert (
        info["weights_sha256"]
        and len(info["weights_sha256"]) == 64
        and info["input_size"] == {"height": 64, "width": 64}
    )


def test_batched_equals_unbatched(tiny_zoedepth):
    est = DepthEstimator.load(str(tiny_zoedepth), device="cpu")
    x = frames(4, seed=1)
    batched = est.predict(x)
    one_by_one = np.concatenate([est.predict(x[i : i + 1]) for i in range(4)])
    np.testing.assert_allclose(batched, one_by_one, rtol=1e-4, atol=1e-5)


def test_units_round_trip_and_storage():
    d = np.array([[0.0005, 1.2344, 65.6], [np.nan, -1.0, 0.0]])
    mm = depth_to_uint16_mm(d)
    assert mm.dtype == np.uint16 and mm.tolist() == [[1, 1234, 65535], [0, 0, 0]]
    back = uint16_mm_to_depth(mm)
    assert abs(back[0, 1] - 1.2344) <= 0.0005 and np.isnan(back[1]).all()
    rng = np.random.default_rng(0)
    img = rng.integers(0, 65535, (17, 23), dtype=np.uint16)
    np.testing.assert_array_equal(decode_depth(encode_depth(img)), img)  # lossless


def test_no_weights_is_a_one_line_reason(tmp_path):
    with pytest.raises(DepthWeightsNotFound) as e:
        DepthEstimator.load(str(tmp_path))
    assert "no ZoeDepth checkpoint in" in str(e.value) and "\n" not in str(e.value)
    with pytest.raises(DepthWeightsNotFound, match="needs --depth-model pointing at a local ZoeDepth clone"):
        DepthEstimator.load(None, backend="hub")


def test_beam_step_carries_the_accelerator_hint_and_equals_direct_calls(tiny_zoedepth):
    import apache_beam as beam
    from apache_beam.testing.util import assert_that

    from beam_jobs.depth_step import DEFAULT_ACCELERATOR, with_depth
    from beam_jobs.shard_writing import EncodedEpisode, EncodedTask

    eps = [EncodedEpisode("d", f"e#{i}", {"step": list(range(n))}, frames(n, seed=i)) for i, n in enumerate((3, 5))]
    est = DepthEstimator.load(str(tiny_zoedepth), device="cpu")
    expected = {e.episode_id: depth_to_uint16_mm(est.predict(e.pixels)) for e in eps}

    def check(actual):
        (task,) = actual
        assert [e.episode_id for e in task.episodes] == ["e#0", "e#1"]
        for e in task.episodes:  # 8 frames in batches of 3: batches cross episode boundaries
            got = np.stack([decode_depth(b) for b in e.columns["depth"]])
            assert np.abs(got.astype(int) - expected[e.episode_id].astype(int)).max() <= 1  # mm rounding
            assert e.pixels is None

    p = beam.Pipeline()
    tasks = p | beam.Create([EncodedTask("d", "d/f#0-2", eps, [])])
    assert_that(with_depth(tasks, str(tiny_zoedepth), frames_per_batch=3), check)
    proto = p.to_runner_api()
    (depth_step,) = [t for t in proto.components.transforms.values() if t.unique_name.endswith("ZoeDepth")]
    hints = proto.components.environments[depth_step.environment_id].resource_hints
    assert any(DEFAULT_ACCELERATOR.encode() in v for v in hints.values()), hints
    p.run().wait_until_finish()


@pytest.mark.slow
def test_export_with_depth_writes_a_depth_column(tiny_zoedepth, bridge_root, tmp_path):
    import pyarrow as pa

    from pipeline.run import main

    out = tmp_path / "out"
    assert (
        main(
            [
                "--mixture",
                "bridge",
                "--data-dir",
                str(bridge_root),
                "--out",
                str(out),
                "--image-size",
                "32",
                "--split",
                "train[:3]",
                "--depth-model",
                str(tiny_zoedepth),
            ]
        )
        == 0
    )
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["depth"]["units"] == "millimetres" and manifest["depth"]["encoding"] == "png16"
    assert len(manifest["depth"]["weights_sha256"]) == 64
    shard = out / manifest["datasets"]["bridge_orig"]["shards"][0]["path"]
    with pa.memory_map(str(shard)) as src:
        table = pa.ipc.open_file(src).read_all()
    depth = [decode_depth(b) for b in table.column("depth").to_pylist()]
    assert len(depth) == table.num_rows == 24 and all(d.shape == (32, 32) and d.dtype == np.uint16 for d in depth)


def test_backprojection_matches_the_pinhole_formula_by_hand():
    depth = np.full((4, 6), 2.0)
    depth[1, 2] = 0.0  # invalid
    fx, fy, cx, cy = 100.0, 50.0, 2.5, 1.5
    pts = backproject(depth, fx, fy, cx, cy)
    # pixel row 3, column 5: X = (5 - 2.5) * 2 / 100, Y = (3 - 1.5) * 2 / 50, Z = 2
    np.testing.assert_allclose(pts[3, 5], [0.05, 0.06, 2.0])
    np.testing.assert_allclose(pts[0, 0], [-0.05, -0.06, 2.0])
    assert np.isnan(pts[1, 2]).all()


def test_pooling_and_intrinsics_scaling_by_hand():
    pts = np.arange(4 * 4 * 3, dtype=float).reshape(4, 4, 3)
    pts[0, 0] = np.nan
    pooled = pool_to_patches(pts, patch=2)
    assert pooled.shape == (2, 2, 3)
    np.testing.assert_allclose(pooled[0, 0], np.mean([pts[0, 1], pts[1, 0], pts[1, 1]], axis=0))
    np.testing.assert_allclose(pooled[1, 1], np.mean([pts[2, 2], pts[2, 3], pts[3, 2], pts[3, 3]], axis=0))
    assert pool_to_patches(np.ones((224, 224, 3)), 14).shape == (16, 16, 3)
    fx, fy, cx, cy = scale_intrinsics(623.588, 623.588, 319.501, 239.545, (640, 480), (224, 224))
    assert fx == pytest.approx(623.588 * 0.35) and fy == pytest.approx(623.588 * 224 / 480)
    assert cx == pytest.approx(319.501 * 0.35 + 0.5 * 0.35 - 0.5)


@pytest.mark.gpu
def test_cuda_fp16_depth_agrees_with_cpu_fp32(tiny_zoedepth):
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device on this machine")
    x = frames(4)
    cpu = DepthEstimator.load(str(tiny_zoedepth), device="cpu").predict(x)
    gpu = DepthEstimator.load(str(tiny_zoedepth), device="cuda").predict(x)  # fp16 autocast
    assert gpu.shape == cpu.shape and gpu.dtype == np.float32 and np.isfinite(gpu).all()
    np.testing.assert_allclose(gpu, cpu, rtol=5e-2, atol=5e-2 * float(np.abs(cpu).mean()))
