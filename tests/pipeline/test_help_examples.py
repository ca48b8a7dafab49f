"""Every example that a command's --help shows runs, on small data: the lines `python -m <command> ...` of
each CLI's help, in one working directory where the earlier commands' outputs feed the later ones
(convert -> run -> rediscretize -> inspect -> export), as a user would try them. The only substitution:
`/data/oxe` (a local OXE mirror) is the real Bridge slice."""

import contextlib
import io
import re
import shlex

import numpy as np
import pytest

from grids import inspect, rediscretize
from pipeline import export, run
from sources import convert, sample

# in the order a user's outputs feed each other
CLIS = [
    ("sources.convert", convert.main),
    ("sources.sample", sample.main),
    ("pipeline.run", run.main),
    ("grids.rediscretize", rediscretize.main),
    ("grids.inspect", inspect.main),
    ("pipeline.export", export.main),
]


def help_text(main) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    return out.getvalue()


def examples(text: str) -> list[list[str]]:
    """argv (without `python`) of each `python -m ...` line of a help text, comments removed."""
    out = []
    for line in text.splitlines():
        m = re.match(r"^\s+python -m (.*)$", line)
        if m:
            out.append(["-m", *shlex.split(m.group(1).split("  #")[0])])
    return out


def test_every_command_shows_examples():
    for name, main in CLIS:
        found = examples(help_text(main))
        assert found and all(argv[1] for argv in found), name


@pytest.mark.slow
def test_every_help_example_runs(tmp_path, monkeypatch, bridge_root):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(0)
    (tmp_path / "my_episodes").mkdir()
    for i in range(4):  # a robot's own episodes, as the converter takes them
        t = 10
        action = np.column_stack([rng.normal(0, 0.01, (t, 6)), (np.arange(t) < 6)]).astype(np.float32)
        np.savez(tmp_path / "my_episodes" / f"ep{i}.npz", image=rng.integers(0, 256, (t, 24, 32, 3), dtype=np.uint8),
                 action=action, language_instruction=np.array(["wipe the table"] * t))  # fmt: skip
    np.save(tmp_path / "actions.npy", np.clip(rng.normal(0, 0.3, (400, 7)), -1, 1))
    mains = dict(CLIS)
    ran = []
    for name, main in CLIS:
        for argv in examples(help_text(main)):
            argv = [str(bridge_root) if a == "/data/oxe" else a for a in argv]
            assert argv[0] == "-m" and argv[1] in mains, argv
            rc = mains[argv[1]](argv[2:])
            assert rc == 0, (name, argv)
            ran.append(" ".join(argv[1:3]))
    assert len(ran) >= 16, ran
    assert (tmp_path / "output" / "my_robot" / "manifest.json").exists()
