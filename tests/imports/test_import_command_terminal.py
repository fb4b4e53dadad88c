"""What `product-importer import FILE` leaves in a person's terminal: the bar as the import
goes, the summary, plain warnings, and the rejected rows in a file of theirs."""

import re

from .test_embedded_and_cli import Terminal


def test_the_terminal_shows_the_bar_and_the_summary_not_the_step_log(tmp_path, catalog):
    """Without LOG_LEVEL it printed "INFO import step reading: 0.03s" and more around the bar."""
    path = tmp_path / "fruit.csv"
    path.write_text("sku,name\nA-1,Apple\nB-2,Banana\n")

    terminal = Terminal(path, 80, unset=("LOG_LEVEL",))
    terminal.process.wait(timeout=120)

    assert terminal.process.returncode == 0, terminal.text()
    assert "Finished" in terminal.last_bar(), terminal.text()
    assert re.search(r"│ Created\s+│ 2\s+│", terminal.text()), terminal.text()
    assert "INFO" not in terminal.text() and "import step" not in terminal.text(), terminal.text()
