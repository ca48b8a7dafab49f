"""Each convention of the standardization on a small hand-made episode, checked by hand."""

import zlib

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from manifests.registry import parse_datasets
from transforms.episode import RawEpisode
from transforms.gripper import continuous_open, relative, to_absolute_open
from transforms.rotation import quaternion_to_euler
from transforms.standardize import EpisodeError, standardize

DEFAULT_INTR = {"fx": 1.0, "fy": 1.0, "cx": 0.0, "cy": 0.0, "width": 2, "height": 2}


def config(action, name="robot", **extra):
    entry = {
        "version": "1",
        "control_hz": 10,
        "images": {"primary": "observation/image"},
        "image_size": [8, 8],
        "instruction": extra.pop("instruction", {"key": "language_instruction"}),
        "proprio": extra.pop("proprio", []),
        "action": action,
        **extra,
    }
    return parse_datasets({"datasets": {name: entry}, "default_intrinsics": DEFAULT_INTR}, "test")[name]


def episode(**steps):
    t = len(next(iter(steps.values())))
    steps.setdefault("language_instruction", np.array([b"do it"] * t, dtype=object))
    return RawEpisode("robot", "f#0", "f", {k.replace("__", "/"): np.asarray(v) for k, v in steps.items()})


XYZRPY = {"translation": {"key": "action", "slice": [0, 3]}, "rotation": {"key": "action", "slice": [3, 6]}}


# Expected outputs below were produced by running the public OXE functions (rel2abs_gripper_actions,
# binarize_gripper_actions of OpenVLA/SpatialVLA's data_utils) on the same inputs.


@pytest.mark.parametrize(
    "raw, public",
    [
        ([0, 0, 1, 0, 0, -1, 0], [1, 1, 0, 0, 0, 1, 1]),  # +1 close, -1 open, 0 keep
        ([0, 0, -1, 0, 1], [0, 0, 1, 1, 0]),  # first command "open": closed before it
        ([0, 0, 0], [1, 1, 1]),  # no command at all: open throughout
        ([0.1, -0.1, 0.05], [1, 1, 1]),  # +-0.1 exactly is inside the dead band
        ([1, 1, 0, -1], [0, 0, 0, 1]),
    ],
)
def test_relative_gripper_integrated_as_the_public_rel2abs(raw, public):
    np.testing.assert_array_equal(relative(np.array(raw, float)), public)


@pytest.mark.parametrize(
    "raw, public",
    [
        ([1, 0.5, 0.5, 0, 0, 0.3, 0.6], [1, 0, 0, 0, 0, 0.6, 0.6]),  # trailing in-between run: the last raw value
        ([0, 0.96, 0.95, 0.05, 0.04, 0.7], [0, 1, 0, 0, 0, 0.7]),  # 0.95 and 0.05 themselves are in between
        ([0.5, 0.6, 0.7], [0.7, 0.7, 0.7]),  # nothing decisive at all
    ],
)
def test_bridge_gripper_binarized_as_the_public_binarize(raw, public):
    np.testing.assert_allclose(continuous_open(np.array(raw, float)), public, rtol=0, atol=1e-7)


def test_relative_gripper_through_the_registry_spec():
    cfg = config({**XYZRPY, "gripper": {"key": "action", "slice": [6, 7], "convention": "relative"}})
    a = np.zeros((4, 7))
    a[1, 6] = 1.0  # close at step 1
    out = standardize(episode(action=a), cfg)
    np.testing.assert_array_equal(out.action[:, 6], [1, 0, 0, 0])


@pytest.mark.parametrize(
    "convention, raw, public",
    [  # the public formulas keep continuous values: nothing is rounded at 0.5
        ("absolute_open", [1, 0, 0.7, 0.2], [1, 0, 0.7, 0.2]),  # x
        ("absolute_closed", [1, 0, 0.7, 1.2], [0, 1, 0.3, -0.2]),  # 1 - x, no clip (hydra, dlr_edan, DROID)
        ("signed_open", [1, -1, 0.4, -0.3], [1, 0, 0.4, 0]),  # clip(x, 0, 1)
        ("signed_closed", [1, -1, 0.6, -0.3], [0, 1, 0.4, 1]),  # 1 - clip(x, 0, 1)
        ("always_open", [5, 5, 5, 5], [1, 1, 1, 1]),
        ("always_closed", [5, 5, 5, 5], [0, 0, 0, 0]),
    ],
)
def test_absolute_and_inverted_conventions_keep_continuous_values(convention, raw, public):
    np.testing.assert_allclose(to_absolute_open(np.array(raw, float), convention), public, rtol=0, atol=1e-7)


def test_no_rotation_gives_zeros_and_planar_translation_is_padded():
    cfg = config(
        {
            "translation": {"key": "action", "slice": [0, 2], "pad_to": 3},
            "rotation": {"format": "none"},
            "gripper": {"convention": "always_open"},
        }
    )
    out = standardize(episode(action=np.array([[0.1, -0.2], [0.3, 0.4]])), cfg)
    np.testing.assert_allclose(out.action, [[0.1, -0.2, 0, 0, 0, 0, 1], [0.3, 0.4, 0, 0, 0, 0, 1]], atol=1e-7)


def test_quaternion_rotation_becomes_roll_pitch_yaw():
    rpy = np.array([[0.1, -0.2, 0.3], [0.0, 0.0, 0.0], [-1.0, 0.5, 2.5]])
    q = Rotation.from_euler("xyz", rpy).as_quat()  # x, y, z, w
    np.testing.assert_allclose(quaternion_to_euler(q), Rotation.from_quat(q).as_euler("xyz"), atol=1e-9)
    cfg = config(
        {
            "translation": {"key": "action", "slice": [0, 3]},
            "rotation": {"key": "action", "slice": [3, 7], "format": "quaternion"},
            "gripper": {"key": "action", "slice": [7, 8], "convention": "absolute_open"},
        }
    )
    a = np.column_stack([np.zeros((3, 3)), q, np.ones(3)])
    np.testing.assert_allclose(standardize(episode(action=a), cfg).action[:, 3:6], rpy, atol=1e-6)


def test_compressed_state_is_decoded():
    cfg = config(
        {**XYZRPY, "gripper": {"key": "action", "slice": [6, 7], "convention": "absolute_open"}},
        proprio=[
            {"key": "observation/pose", "encoding": "zlib_float32", "dims": 7},
            {"key": "observation/closed", "encoding": "zlib_float32", "dims": 1},
        ],
    )
    pose = np.arange(14, dtype=np.float32).reshape(2, 7)
    ep = episode(
        action=np.zeros((2, 7)),
        observation__pose=np.array([zlib.compress(r.tobytes()) for r in pose], dtype=object),
        observation__closed=np.array([zlib.compress(np.float32([v]).tobytes()) for v in (0, 1)], dtype=object),
    )
    out = standardize(ep, cfg)
    np.testing.assert_array_equal(out.proprio, np.column_stack([pose, [0, 1]]))
    bad = episode(
        action=np.zeros((2, 7)),
        observation__pose=np.array([b"junk", b"junk"], dtype=object),
        observation__closed=ep.steps["observation/closed"],
    )
    with pytest.raises(EpisodeError, match="cannot decode zlib float32 state"):
        standardize(bad, cfg)


def test_missing_instruction_is_flagged_and_code_points_decoded():
    cfg = config({**XYZRPY, "gripper": {"convention": "always_open"}})
    out = standardize(episode(action=np.zeros((2, 7)), language_instruction=np.array([b"", b" "], dtype=object)), cfg)
    assert out.instruction == "" and not out.has_instruction
    cfg = config(
        {**XYZRPY, "gripper": {"convention": "always_open"}},
        instruction={"key": "observation/instruction", "encoding": "unicode_codepoints"},
    )
    codes = np.zeros((2, 16), np.int32)
    codes[:, :5] = [ord(c) for c in "push."]
    out = standardize(episode(action=np.zeros((2, 7)), observation__instruction=codes), cfg)
    assert out.instruction == "push." and out.has_instruction


def test_bridge_drop_first_and_relabel_by_hand():
    cfg = config(
        {
            **XYZRPY,
            "gripper": {"key": "action", "slice": [6, 7], "convention": "continuous_open"},
            "drop_first_steps": 1,
            "relabel_from_state": {"key": "observation/state", "slice": [0, 6]},
        }
    )
    state = np.array(
        [
            [0, 0, 0, 0, 0, 0, 1],
            [1, 0, 0, 0, 0, 0, 1],
            [1, 2, 0, 0, 0, 0.5, 1],
            [1, 2, 4, 0, 0, 0.5, 0],
            [2, 2, 4, 0.1, 0, 0.5, 0],
        ],
        float,
    )
    action = np.zeros((5, 7))
    action[:, 6] = [1, 1, 0.5, 0.0, 0.0]
    out = standardize(episode(action=action, observation__state=state), cfg)
    # steps 1..4 remain; movement = state[t+1] - state[t]; the last step has no successor
    expected = np.array([[0, 2, 0, 0, 0, 0.5, 1], [0, 0, 4, 0, 0, 0, 0], [1, 0, 0, 0.1, 0, 0, 0]])
    np.testing.assert_allclose(out.action, expected, atol=1e-6)


def test_too_short_episode_is_a_one_line_error():
    cfg = config(
        {
            **XYZRPY,
            "gripper": {"key": "action", "slice": [6, 7], "convention": "absolute_open"},
            "drop_first_steps": 1,
            "relabel_from_state": {"key": "action", "slice": [0, 6]},
        },
        name="short",
    )
    with pytest.raises(EpisodeError) as e:
        standardize(episode(action=np.zeros((2, 7))), cfg)
    assert str(e.value) == "dataset 'short' episode f#0: 2 steps, its transform needs at least 3"


def test_missing_key_and_short_slice_are_clear_errors():
    cfg = config({**XYZRPY, "gripper": {"key": "action", "slice": [6, 7], "convention": "absolute_open"}})
    with pytest.raises(EpisodeError, match=r"'action' has 5 dims, slice \[3, 6\] needs 6"):
        standardize(episode(action=np.zeros((3, 5))), cfg)
    with pytest.raises(EpisodeError, match=r"step key 'action' missing"):
        standardize(episode(other=np.zeros((3, 7))), cfg)


def test_instructions_stay_per_step_through_drops_and_relabeling():
    """An instruction that changes within an episode is kept step by step (not the first for all), aligned
    with the actions after the first-step drop and the relabeling's loss of the last step."""
    texts = [b"", b"pick up the cup", b"pick up the cup ", b"place it", b"place it", b"done"]
    cfg = config(
        {**XYZRPY, "gripper": {"key": "action", "slice": [6, 7], "convention": "absolute_open"},
         "drop_first_steps": 1, "relabel_from_state": {"key": "observation/state", "slice": [0, 6]}}
    )  # fmt: skip
    raw = episode(
        action=np.zeros((6, 7)),
        observation__state=np.arange(36, dtype=float).reshape(6, 6),
        language_instruction=np.array(texts, dtype=object),
    )
    out = standardize(raw, cfg)
    # dropped: step 0; relabeled: the last step has no successor
    assert out.num_steps == 4 and list(out.instructions) == [
        "pick up the cup",
        "pick up the cup",
        "place it",
        "place it",
    ]
    assert out.step_instructions() == list(out.instructions) and out.instruction == "pick up the cup"
    empty_first = standardize(episode(action=np.zeros((3, 7)), language_instruction=np.array([b"", b"b", b"c"], dtype=object)),
                              config({**XYZRPY, "gripper": {"convention": "always_open"}}))  # fmt: skip
    assert list(empty_first.instructions) == ["", "b", "c"] and empty_first.has_instruction


def test_the_export_encodes_each_step_s_instruction():
    """Encoding.encode: the language_instruction column and the input_ids are per step."""
    from beam_jobs.shard_writing import Encoding
    from grids.grid import uniform_grid
    from grids.tokenizer import ActionTokenizer
    from transforms.episode import StandardEpisode
    from transforms.frames import encode_jpeg

    ep = StandardEpisode(
        "robot", "f#0", np.zeros((3, 7), np.float32), instruction="a",
        instructions=np.array(["a", "a", "b c"], dtype=object),
        image=np.array([encode_jpeg(np.zeros((8, 8, 3), np.uint8))] * 3, dtype=object),
    )  # fmt: skip
    stats = {"robot": {"action": {k: [0.0] * 7 for k in ("q01", "min", "mean")} | {k: [1.0] * 7 for k in ("q99", "max", "std")}
                       | {"mask": [True] * 6 + [False]}}}  # fmt: skip
    words = lambda text, add_special_tokens: {"input_ids": [len(w) for w in text.split()]}  # noqa: E731
    enc = Encoding(stats, uniform_grid().to_json(), 8, "bounds_q99", False, text_tokenizer=words)
    cfg = config({**XYZRPY, "gripper": {"convention": "always_open"}})
    cols = enc.encode(ActionTokenizer(uniform_grid()), ep, cfg).columns
    assert cols["language_instruction"] == ["a", "a", "b c"]
    assert cols["input_ids"] == [[1], [1], [1, 1]]
