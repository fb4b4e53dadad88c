"""How errors are spelled for a terminal (`said`)."""

import pytest

from product_importer.errors import said


@pytest.mark.parametrize(
    ("message", "details", "expected"),
    [
        ("The file is empty", None, "The file is empty."),
        ("The file is empty.", None, "The file is empty."),
        ("Not valid; see details.", {"plan": "true or false."}, "Not valid. plan: true or false."),
        ("Is the server running?", None, "Is the server running?"),
        ("Stop!", None, "Stop!"),
    ],
)
def test_said_ends_a_message_once_and_as_it_ends(message, details, expected):
    assert said(message, details) == expected
