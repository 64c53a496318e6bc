"""The tutorial's commands, as the page shows them: every line of its fenced `sh` blocks
(a `\\` at the end of a line continues it; `# ...` after a command is its comment). A comment
`exit N` says what the command exits with when it is not 0. The tests check every command
against its parser and run the tutorial's `starter.py` commands on the dev stack."""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass
from pathlib import Path

TUTORIAL = Path(__file__).resolve().parents[2] / "docs/tutorial.md"
FENCE = re.compile(r"^```sh\n(.*?)^```", re.DOTALL | re.MULTILINE)
EXIT = re.compile(r"\bexit (\d+)\b")


@dataclass(frozen=True)
class TutorialCommand:
    words: tuple[str, ...]
    comment: str
    expected_exit: int

    @property
    def text(self) -> str:
        return shlex.join(self.words)


def tutorial_commands(path: Path = TUTORIAL) -> list[TutorialCommand]:
    commands = []
    for block in FENCE.findall(path.read_text()):
        for line in block.replace("\\\n", " ").splitlines():
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            words = shlex.split(line, comments=False)
            comment = ""
            if "#" in words:
                at = words.index("#")
                words, comment = words[:at], " ".join(words[at + 1 :])
            found = EXIT.search(comment)
            commands.append(
                TutorialCommand(tuple(words), comment, int(found.group(1)) if found else 0)
            )
    return commands
