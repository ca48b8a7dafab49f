"""The README's code blocks under a heading, so that tests run them as written."""

import re
import textwrap

from tests.conftest import ROOT


def readme_blocks(heading: str) -> list[tuple[str, str]]:
    """(language, code) of each fenced block in the README section `## heading`, in order."""
    text = (ROOT / "README.md").read_text()
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    section = text[start : end if end >= 0 else len(text)]
    blocks = re.finditer(r"^( *)```(\w*)\n(.*?)^\1```", section, re.S | re.M)  # indented ones in list items too
    return [(m[2], textwrap.dedent(m[3])) for m in blocks]
