"""Settings read from the environment: what a mistyped value says."""

import pytest

from product_importer.config import load_config

SETTING = "IMPORT_SEARCH_INDEX_AFTER_SWITCH"


@pytest.mark.parametrize(
    ("value", "expected"), [("", None), ("auto", None), ("TRUE", True), ("off", False)]
)
def test_the_search_index_setting_is_auto_unless_told(monkeypatch, tmp_path, value, expected):
    monkeypatch.setenv(SETTING, value)

    assert load_config(str(tmp_path))[SETTING] is expected


def test_a_mistyped_search_index_setting_says_what_it_takes(monkeypatch, tmp_path):
    monkeypatch.setenv(SETTING, "maybe")

    with pytest.raises(ValueError, match="must be auto, true or false, not 'maybe'"):
        load_config(str(tmp_path))
