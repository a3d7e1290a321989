"""``VoteBar``: a vote that cannot be stored says so in one line and can be cast again."""

from __future__ import annotations

from gridllm_nb.core.arena import ArenaRound
from gridllm_nb.widgets.votebar import VoteBar

SMOL, GEMMA = "smollm2:135m", "gemma3:270m"


def test_a_vote_that_cannot_be_stored_says_so_and_can_be_cast_again(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    bar = VoteBar(path=blocker / "votes.sqlite3")  # its folder is a file: nothing can be stored
    blind = ArenaRound([SMOL, GEMMA])
    bar.ask(blind)
    bar.vote("A")
    assert bar.line.value.startswith("vote not stored:") and not blind.voted
    assert "\n" not in bar.line.value
    assert not any(b.disabled for b in bar.buttons.values())
    bar.path = tmp_path / "votes.sqlite3"
    bar.vote("A")
    assert blind.voted and all(b.disabled for b in bar.buttons.values())
    assert bar.buttons["A"].button_style == "success" and bar.line.value.startswith("Your vote: A better.")
