"""Settings read from the environment: what a mistyped value says; `.env.example` names
every one the code reads, and none it no longer reads."""

import re

import pytest

from product_importer.config import load_config
from tests.conftest import ROOT

# How the code reads a setting: env("X") in config.py, os.environ.get("X") elsewhere, and
# the name the metrics module keeps in a constant.
READS = re.compile(r'(?:\benv\(|environ\.get\(|environ\[|_ENV = )"([A-Z][A-Z0-9_]+)"')


def documented_settings() -> set[str]:
    """The settings `.env.example` names (`NAME=` lines)."""
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^([A-Z][A-Z0-9_]+)=", text, flags=re.MULTILINE))


def test_the_example_env_file_names_every_setting_the_code_reads_and_no_other():
    read = set()
    for path in (ROOT / "src" / "product_importer").rglob("*.py"):
        for found in READS.findall(path.read_text()):
            read.add(found)
    assert read == documented_settings()


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
