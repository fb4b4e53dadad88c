"""`product-importer import FILE --url URL`, against a real server: the summary a person reads
at the end."""

import re
import subprocess

from tests.conftest import BIN

from .test_tus_served import summary


def start_import(path, url: str, token: str) -> subprocess.Popen:
    args = [str(BIN / "product-importer"), "import", str(path), "--url", url, "--token", token]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_a_remote_import_ends_with_the_summary_and_where_to_get_its_rejected_rows(
    tmp_path, live_server, live_worker, accounts, http
):
    # It printed one line, "completed_with_errors: 3 rows read, ...", where the local command
    # prints a table; and no word of the rejected rows.
    path = tmp_path / "fruit.csv"
    path.write_text("sku,name\nA-1,Apple\nB-2,Banana\na-1,Apple 2\n,Nameless\n")
    token = accounts["editor"].token

    command = start_import(path, live_server, token)
    stdout, stderr = command.communicate(timeout=300)

    assert command.returncode == 0, stdout + stderr
    shown = summary(stdout)
    assert shown["Outcome"] == "Completed with errors"
    assert (shown["Rows read"], shown["Created"], shown["Updated"]) == ("4", "2", "0")
    assert (shown["Unchanged"], shown["Rejected"]) == ("0", "1")
    assert shown["Repeated SKUs"] == "1 row repeated an earlier SKU; the last one was kept."
    assert re.fullmatch(r"\d+ ms|\d\.\d s", shown["Duration"]), shown
    said = r"^Rejected rows, to fix and import again: on the import's page (\S+)\n"
    said += r"or with your token: (\S+)$"
    where = re.search(said, stdout, re.MULTILINE)
    assert where, stdout
    assert http.get(where[1]).status_code == 200
    rejected = http.get(where[2])
    assert rejected.status_code == 200 and "Nameless" in rejected.text
