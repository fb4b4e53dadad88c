"""`product-importer --help`: what a newcomer reads first, in an 80-column terminal."""

import os
import subprocess

import pytest

from tests.conftest import BIN


def help_text(*group: str) -> str:
    """The help of `product-importer GROUP --help`, as an 80-column terminal shows it."""
    env = {**os.environ, "COLUMNS": "80"}
    done = subprocess.run(
        [str(BIN / "product-importer"), *group, "--help"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return done.stdout


@pytest.mark.parametrize("group", [(), ("users",), ("tokens",)], ids=["main", "users", "tokens"])
def test_every_command_is_summed_up_whole(group):
    # Click cut a long first sentence at the width: "Import a CSV file from a terminal, with a
    # progress bar: here,..." said nothing of what followed.
    commands = help_text(*group).split("Commands:\n")[1]
    assert [line for line in commands.splitlines() if line.rstrip().endswith("...")] == []
