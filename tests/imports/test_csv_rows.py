"""Reading and validating product CSVs: in-memory files through `open_csv(...).batches()`."""

import gzip
import unicodedata
from dataclasses import dataclass
from functools import partial
from io import BytesIO, TextIOWrapper

import pytest

from product_importer.imports import csv_rows
from product_importer.imports.csv_rows import NotUtf8, open_csv
from product_importer.imports.failures import FileRejected


@pytest.fixture(autouse=True)
def _empty_tables():
    """Pure parsing: no database to empty (overrides the suite-wide fixture)."""


@dataclass
class Read:
    """Everything a caller sees after reading a whole file."""

    file: csv_rows.CsvFile
    valid: list[tuple]
    rejected: list[tuple]  # (line, sku, reason)
    rows_read: int
    batch_sizes: list[int]
    rejected_cells: list[list[str] | None]  # each rejected row's cells as the file had them

    @property
    def products(self) -> list[tuple]:
        """The valid rows without their line numbers: (sku, name, description, active)."""
        return [row[1:] for row in self.valid]

    @property
    def reasons(self) -> list[str]:
        return [reason for _line, _sku, reason in self.rejected]


def read(data: bytes | str, *, size: int = 5000, limit: int | None = None) -> Read:
    if isinstance(data, str):
        data = data.encode()
    csv_file = open_csv(BytesIO(data), max_decompressed_bytes=limit)
    result = Read(csv_file, [], [], 0, [], [])
    for batch in csv_file.batches(size):
        result.valid += batch.valid
        result.rejected += [rejected[:3] for rejected in batch.rejected]
        result.rejected_cells += [rejected[3] for rejected in batch.rejected]
        result.rows_read += batch.rows_read
        result.batch_sizes.append(batch.rows_read)
    return result


def only_reason(data: bytes | str) -> str:
    """The reason the file's one data row was rejected."""
    result = read(data)
    assert result.valid == [], result.valid
    assert len(result.rejected) == 1, result.rejected
    return result.rejected[0][2]


# --- encodings, line ends, compression ------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        b"sku,name\nA-1,Apple\n",
        b"sku,name\r\nA-1,Apple\r\n",
        b"sku,name\rA-1,Apple\r",
        b"\xef\xbb\xbfsku,name\r\nA-1,Apple\r\n",
        b"sku,name\nA-1,Apple",  # no line end after the last row
        b"\n\n  \nsku,name\n\nA-1,Apple\n\n\n",
        gzip.compress(b"\xef\xbb\xbfsku,name\r\nA-1,Apple\r\n"),
    ],
    ids=["lf", "crlf", "cr", "bom", "no-final-newline", "blank-lines", "gzip"],
)
def test_the_same_product_whatever_the_file_format(data):
    result = read(data)
    assert result.products == [("A-1", "Apple", None, None)]
    assert result.rejected == []
    assert result.rows_read == 1
    assert result.file.warnings == []


def test_bom_is_not_part_of_the_first_column_name():
    result = read("\ufeffSKU,Name\nA-1,Apple\n")
    assert result.file.header.positions == {"sku": 0, "name": 1}
    assert result.file.header.unknown == ()


@pytest.mark.parametrize(
    ("data", "name"),
    [
        (b"sku,name\nA-1,Caf\xe9\n", "Café"),
        (b"sku,name\nA-1,\x80 5 \x96 \x93best\x94\n", "€ 5 – “best”"),
        (b"\xef\xbb\xbfsku,name\nA-1,Gr\xfc\xdfe\n", "Grüße"),  # a BOM, then Windows-1252
        (gzip.compress(b"sku,name\nA-1,Caf\xe9\n"), "Café"),
    ],
    ids=["latin-letter", "cp1252-punctuation", "bom-then-cp1252", "gzip"],
)
def test_a_file_that_is_not_utf8_is_read_as_windows_1252_with_a_warning(data, name):
    result = read(data)
    assert result.products == [("A-1", name, None, None)]
    assert result.file.header.positions == {"sku": 0, "name": 1}
    assert len(result.file.warnings) == 1
    assert "not valid UTF-8" in result.file.warnings[0]
    assert "Windows-1252" in result.file.warnings[0]


def test_the_five_bytes_windows_1252_leaves_undefined_are_read_as_latin_1():
    undefined = b"\x81\x8d\x8f\x90\x9d"
    assert undefined.decode(csv_rows.FALLBACK_ENCODING) == "\x81\x8d\x8f\x90\x9d"
    # They are C1 control characters, so a row holding one is rejected, not the whole file.
    result = read(b"sku,name,description\nA-1,Caf\xe9,ok\nB-2,Bad,x\x81y\n")
    assert result.products == [("A-1", "Café", "ok", None)]
    assert result.rejected == [(3, "B-2", "description holds a control character")]
    assert "Windows-1252" in result.file.warnings[0]


def test_a_windows_1252_byte_late_in_the_file_asks_the_caller_to_read_it_again():
    data = b"sku,name\n" + b"".join(b"S-%d,Name %d\n" % (i, i) for i in range(5000)) + b"Z,\xe9\n"
    raw = BytesIO(data)
    csv_file = open_csv(raw)
    assert csv_file.warnings == []
    with pytest.raises(NotUtf8):
        for _batch in csv_file.batches():
            pass
    again = csv_rows.reopen_as_fallback(raw)
    valid = [row for batch in again.batches() for row in batch.valid]
    assert len(valid) == 5001
    assert valid[-1] == (5002, "Z", "é", None, None)
    assert "Windows-1252" in again.warnings[0]


def test_gzip_is_detected_by_its_magic_bytes_and_counted_in_compressed_bytes():
    plain = b"sku,name\n" + b"".join(b"S-%d,Name\n" % i for i in range(2000))
    compressed = gzip.compress(plain)
    raw = BytesIO(compressed)
    csv_file = open_csv(raw)
    assert sum(batch.rows_read for batch in csv_file.batches()) == 2000
    assert csv_file.bytes_consumed() == len(compressed)


def test_a_gzip_file_that_expands_past_the_limit_is_refused_saying_so():
    plain = b"sku,name\n" + b"".join(b"S-%d,Name\n" % i for i in range(20_000))
    with pytest.raises(FileRejected, match=r"expands to more than 100,000 bytes.*Split") as refused:
        read(gzip.compress(plain), limit=100_000)
    assert refused.value.code == "decompressed_too_large"  # a retry is refused


def test_the_decompressed_limit_allows_a_gzip_file_within_it_and_ignores_plain_files():
    plain = b"sku,name\n" + b"".join(b"S-%d,Name\n" % i for i in range(20_000))
    assert read(gzip.compress(plain), limit=len(plain)).rows_read == 20_000
    assert read(plain, limit=100_000).rows_read == 20_000  # the upload limit covers plain files


# --- the header -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "positions"),
    [
        ("sku,name", {"sku": 0, "name": 1}),
        ("name,sku,description", {"name": 0, "sku": 1, "description": 2}),
        ("SKU,Name,DESCRIPTION,Active", {"sku": 0, "name": 1, "description": 2, "active": 3}),
        ("  Sku , NAME ,  description  ", {"sku": 0, "name": 1, "description": 2}),
        ('"sku","name"', {"sku": 0, "name": 1}),
    ],
)
def test_header_columns_match_in_any_case_and_order_with_spaces_around(header, positions):
    assert read(f"{header}\n").file.header.positions == positions


@pytest.mark.parametrize(
    ("header", "missing", "found"),
    [
        ("name,description", "Missing required column: sku.", "name, description"),
        ("SKU,Title", "Missing required column: name.", "SKU, Title"),
        ("product,price", "Missing required columns: sku, name.", "product, price"),
        ("sku;name", None, None),  # ";" is the delimiter here: both found
        ("sku name", "Missing required columns: sku, name.", "sku name"),
    ],
)
def test_a_missing_required_column_names_what_is_missing_and_the_header_found(
    header, missing, found
):
    if missing is None:
        assert read(f"{header}\n").file.header.positions == {"sku": 0, "name": 1}
        return
    with pytest.raises(FileRejected) as error:
        read(f"{header}\nA-1,Apple\n")
    message = str(error.value)
    assert message.startswith(missing)
    assert f"The header found was: {found}." in message
    assert "sku and name" in message  # what to do


def test_a_column_named_twice_is_refused():
    with pytest.raises(FileRejected, match='"sku" twice'):
        read("sku,name,SKU\nA,B,C\n")


def test_unknown_columns_are_listed_and_ignored():
    result = read("Price,sku,name, Colour \n9.99,A-1,Apple,red\n")
    assert result.file.header.unknown == ("Price", "Colour")
    assert result.products == [("A-1", "Apple", None, None)]


def test_a_stray_quote_in_a_header_name_is_part_of_it():
    result = read('sku,name,Width (in")\nA-1,Apple,3\n')
    assert result.file.header.unknown == ('Width (in")',)
    assert result.products == [("A-1", "Apple", None, None)]


def test_unnamed_columns_are_listed_by_position():
    result = read("sku,name,,\nA-1,Apple,,\n")
    assert result.file.header.unknown == ("(unnamed column 3)", "(unnamed column 4)")
    assert result.products == [("A-1", "Apple", None, None)]


def test_a_header_only_file_has_no_rows():
    result = read("sku,name,description\r\n")
    assert (result.valid, result.rejected, result.rows_read) == ([], [], 0)


def test_a_file_not_in_utf8_whose_bom_is_alone_on_its_first_line_reads_the_next_as_header():
    # Read as Windows-1252, the BOM's three bytes ("ï»¿") made the first line not blank: the
    # header found was empty, and the import failed.
    result = read(b"\xef\xbb\xbf\r\nsku,name\r\nA-1,Caf\xe9\r\n")

    assert result.products == [("A-1", "Café", None, None)]
    assert result.valid[0][0] == 3  # the file's own line number


@pytest.mark.parametrize("data", [b"", b"\n\n", b"  \r\n\t\r\n", b"\xef\xbb\xbf"])
def test_a_file_without_a_header_line_has_no_header(data):
    assert open_csv(BytesIO(data)).header is None


@pytest.mark.parametrize(
    ("header_line", "delimiter"),
    [
        ("sku,name,description", ","),
        ("sku;name;description", ";"),
        ("sku\tname\tdescription", "\t"),
        ("sku|name|description", "|"),
        ("sku;name;description,notes", ";"),  # the most frequent wins
        ("sku|name|description;notes", "|"),
        ("sku\tname\tdescription,notes;x", "\t"),
        ("sku,name;description", ","),  # a tie: the comma
        ("sku,name|description\tx;y", ","),
        ("sku", ","),  # none at all
    ],
)
def test_the_delimiter_is_the_most_frequent_of_comma_semicolon_tab_pipe(header_line, delimiter):
    assert csv_rows.detect_delimiter(header_line) == delimiter


@pytest.mark.parametrize(
    ("data", "product"),
    [
        (
            "sku;name;description\nA-1;Apple, red;Sweet, crisp\n",
            ("A-1", "Apple, red", "Sweet, crisp"),
        ),
        ("sku\tname\tdescription\nA-1\tApple; red\tA, b; c\n", ("A-1", "Apple; red", "A, b; c")),
        ("sku|name|description\nA-1|Apple|x,y;z\n", ("A-1", "Apple", "x,y;z")),
        ('sku;name;description\nA-1;"Apple; ""red""";"a\nb"\n', ("A-1", 'Apple; "red"', "a\nb")),
    ],
    ids=["semicolon", "tab", "pipe", "semicolon-quoted"],
)
def test_rows_are_split_on_the_header_delimiter(data, product):
    assert read(data).products == [(*product, None)]


# --- values ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("row", "product"),
    [
        ('A-1,"Apple, red",plain', ("A-1", "Apple, red", "plain")),
        ('A-1,"Say ""hi""",x', ("A-1", 'Say "hi"', "x")),
        ('A-1,Apple,"line 1\r\nline 2\nline 3"', ("A-1", "Apple", "line 1\r\nline 2\nline 3")),
        ('  A-1  ,  Apple  ,"  padded\n  "', ("A-1", "Apple", "padded")),
        ("A-1,Apple,", ("A-1", "Apple", "")),
        ("A-1,Apple,col1\tcol2", ("A-1", "Apple", "col1\tcol2")),
        (
            "A-1,Caf\u00e9 \u2013 \u00a0\u65e5\u672c,\u00a0x\u00a0",
            ("A-1", "Café – \u00a0日本", "x"),
        ),
    ],
    ids=[
        "quoted-delimiter",
        "doubled-quotes",
        "line-breaks",
        "trimmed",
        "empty-description",
        "tab-in-description",
        "unicode",
    ],
)
def test_values_are_read_unquoted_and_trimmed(row, product):
    assert read(f"sku,name,description\r\n{row}\r\n").products == [(*product, None)]


@pytest.mark.parametrize(
    ("value", "active"),
    [
        ("true", True),
        ("TRUE", True),
        ("1", True),
        ("yes", True),
        ("Yes", True),
        ("y", True),
        ("Y", True),
        (" true ", True),
        ("false", False),
        ("False", False),
        ("0", False),
        ("no", False),
        ("NO", False),
        ("n", False),
        ("", None),  # empty: keep what the catalog has (new products are active)
        ("  ", None),
    ],
)
def test_active_values(value, active):
    assert read(f"sku,name,active\nA-1,Apple,{value}\n").products == [
        ("A-1", "Apple", None, active)
    ]


@pytest.mark.parametrize("value", ["maybe", "2", "-1", "t", "f", "on", "off", "enabled", "yes!"])
def test_an_unrecognised_active_value_rejects_the_row(value):
    reason = only_reason(f"sku,name,active\nA-1,Apple,{value}\n")
    assert reason == f'active is not one of true/false, 1/0, yes/no, y/n (found "{value}")'


@pytest.mark.parametrize(
    ("sku", "name", "description", "reason"),
    [
        ("", "Apple", "x", "sku is empty"),
        ("   ", "Apple", "x", "sku is empty"),
        ("A-1", "", "x", "name is empty"),
        ("A-1", " \t ", "x", "name is empty"),
        ("S" * 256, "Apple", "x", "sku is longer than 255 characters"),
        ("A-1", "N" * 256, "x", "name is longer than 255 characters"),
        ("A-1", "Apple", "d" * 10_001, "description is longer than 10,000 characters"),
    ],
    ids=[
        "empty-sku",
        "blank-sku",
        "empty-name",
        "blank-name",
        "long-sku",
        "long-name",
        "long-description",
    ],
)
def test_empty_and_over_long_values_reject_the_row(sku, name, description, reason):
    assert only_reason(f"sku,name,description\n{sku},{name},{description}\n") == reason


def test_the_longest_values_allowed_are_kept_whole():
    sku, name, description = "S" * 255, "N" * 255, "d" * 10_000
    result = read(f"sku,name,description\n{sku},{name},{description}\n")
    assert result.products == [(sku, name, description, None)]


def test_lengths_count_characters_not_bytes():
    sku, name = "é" * 255, "日" * 255
    assert read(f"sku,name\n{sku},{name}\n").products == [(sku, name, None, None)]


@pytest.mark.parametrize(
    ("char", "label"),
    [
        ("\x00", "nul"),
        ("\x01", "soh"),
        ("\x1b", "esc"),
        ("\x7f", "del"),
        ("\x85", "nel"),
        ("\x9f", "apc"),
    ],
)
@pytest.mark.parametrize("column", ["sku", "name", "description"])
def test_control_characters_reject_the_row(char, label, column):
    values = {"sku": "A-1", "name": "Apple", "description": "fine"}
    values[column] = f"x{char}y"
    row = ",".join(values.values())
    expected = (
        "description holds a control character"
        if column == "description"
        else "sku or name holds a control character"
    )
    assert only_reason(f"sku,name,description\n{row}\n") == expected


@pytest.mark.parametrize("char", ["\x1c", "\x1f", "\x85", "\x0b", "\x0c"])
@pytest.mark.parametrize("column", ["sku", "name", "description"])
def test_control_characters_at_the_edge_of_a_value_reject_the_row_too(char, column):
    # Python's str.strip() would remove these as whitespace; the rules say control character.
    values = {"sku": "A-1", "name": "Apple", "description": "fine"}
    values[column] = f"{values[column]}{char}"
    reason = only_reason("sku,name,description\n" + ",".join(values.values()) + "\n")
    assert reason.endswith("holds a control character")


def test_a_cell_escaped_before_the_white_space_it_starts_with_reads_as_the_cell_without_it():
    # how a download writes a cell that starts with a tab or a line break: '<tab>x
    data = 'sku,name,description,active\n\'\tA-1,"\'\r\nApple","\'\t fresh ","\'\tyes"\n'
    result = read(data)
    assert result.rejected == []
    assert result.products == [("A-1", "Apple", "fresh", True)]


def test_a_downloaded_cell_that_starts_with_a_line_break_reads_as_the_cell_did():
    # the rejected rows file escapes a cell "\r\n'\tx5" as "'\r\n'\tx5": it read back as "'\tx5"
    data = 'sku,name,description\nA-1,Apple,"\r\n\'\tx5"\nA-2,Pear,"\'\r\n\'\tx5"\n'
    result = read(data)
    assert result.products == [("A-1", "Apple", "x5", None), ("A-2", "Pear", "x5", None)]


@pytest.mark.parametrize(
    ("cell", "description"),
    [("'\t", ""), ('"\'\r\n"', ""), ("' \t", "'"), (" '=x ", "=x"), ("'=", "=")],
)
def test_an_escaping_quote_goes_before_the_cell_is_trimmed(cell, description):
    result = read(f"sku,name,description,active\nA-1,Apple,{cell},'\t\n")
    assert result.products == [("A-1", "Apple", description, None)]


def test_unicode_spaces_around_a_value_are_trimmed():
    result = read("sku,name\n\u00a0A-1\u3000, Apple\u2009\n")
    assert result.products == [("A-1", "Apple", None, None)]


@pytest.mark.parametrize(
    ("value", "label"),
    [("a\tb", "tab"), ('"a\nb"', "lf"), ('"a\r\nb"', "crlf"), ('"a\rb"', "cr")],
)
@pytest.mark.parametrize("column", ["sku", "name"])
def test_tabs_and_line_breaks_are_allowed_in_the_description_only(value, label, column):
    values = {"sku": "A-1", "name": "Apple", "description": value}
    assert read(f"sku,name,description\n{','.join(values.values())}\n").rejected == []
    values[column], values["description"] = value, "x"
    reason = only_reason(f"sku,name,description\n{','.join(values.values())}\n")
    assert reason == "sku or name holds a control character"


def test_a_nul_in_the_sku_is_reported_without_the_nul():
    result = read("sku,name\nA\x00B,Apple\n")
    assert result.rejected == [(2, "A\ufffdB", "sku or name holds a control character")]


def test_a_rejected_row_reports_its_sku_trimmed_and_cut_short():
    result = read(f"sku,name\n  {'S' * 300}  ,Apple\n")
    assert result.rejected == [(2, "S" * 255, "sku is longer than 255 characters")]


@pytest.mark.parametrize(
    ("row", "reason", "sku"),
    [
        ("A-1,Apple", "wrong number of fields (expected 3, found 2)", "A-1"),
        ("A-1,Apple,x,y", "wrong number of fields (expected 3, found 4)", "A-1"),
        ("A-1,Apple,x,", "wrong number of fields (expected 3, found 4)", "A-1"),
        (",,,", "wrong number of fields (expected 3, found 4)", None),
        ("A-1", "wrong number of fields (expected 3, found 1)", "A-1"),
    ],
)
def test_a_wrong_field_count_rejects_the_row(row, reason, sku):
    result = read(f"sku,name,description\n{row}\n")
    assert result.rejected == [(2, sku, reason)]


def test_a_row_of_the_wrong_width_reports_its_sku_as_an_import_reads_it():
    # as a download escapes a SKU that starts with a tab: the report showed "'\tQ-1"
    result = read("sku,name\n '\tQ-1 ,Apple,extra\n")
    assert result.rejected == [(2, "Q-1", "wrong number of fields (expected 2, found 3)")]


def test_a_row_of_empty_fields_is_rejected_not_skipped():
    assert only_reason("sku,name,description\n,,\n") == "sku is empty"


@pytest.mark.parametrize(
    "blank",
    ["\n", "\r\n", "   \n", "\t\r\n", "\n\n\n"],
    ids=["lf", "crlf", "spaces", "tab", "many"],
)
def test_blank_lines_are_ignored_and_not_counted(blank):
    result = read(f"sku,name\n{blank}A-1,Apple\n{blank}B-2,Banana\n{blank}")
    assert result.products == [("A-1", "Apple", None, None), ("B-2", "Banana", None, None)]
    assert result.rejected == []
    assert result.rows_read == 2


def test_a_quoted_field_still_open_at_the_end_of_the_file_rejects_that_row():
    result = read('sku,name,description\nA-1,Apple,ok\nB-2,Banana,"never closed\nmore\n')
    assert result.products == [("A-1", "Apple", "ok", None)]
    assert result.rejected == [(3, None, "a quoted field is still open at the end of the file")]
    assert result.rows_read == 2


MALFORMED = (
    "malformed quotes (a closing quote is followed by something other than the delimiter or "
    "the line end): remove the spaces after it, or write a quote inside a quoted value twice, "
    'as in "5"" wide"'
)


def test_malformed_quotes_reject_the_row_and_reading_goes_on():
    result = read('sku,name\nA-1,"Apple"s\nB-2,Banana\n')
    assert result.products == [("B-2", "Banana", None, None)]
    assert result.rejected == [(2, None, MALFORMED)]
    assert result.valid[0][0] == 3


def test_spaces_after_a_closing_quote_reject_the_row_saying_what_to_do():
    # As docs/csv-format.md says: the quotes of a field touch its delimiters. A space before
    # the opening quote makes the quotes part of the value, read as it is and trimmed.
    result = read('sku,name\n"A-1" ,Apple\nB-2,"Banana" \nC-3, "Cherry"\n')
    assert result.rejected == [(2, None, MALFORMED), (3, None, MALFORMED)]
    assert result.products == [("C-3", '"Cherry"', None, None)]


def test_line_numbers_count_physical_lines_across_quoted_line_breaks_and_blank_lines():
    data = (
        "\r\n"  # 1: blank, before the header
        "sku,name,description\r\n"  # 2
        'A-1,Apple,"one\r\ntwo\r\nthree"\r\n'  # 3-5
        ",Nameless,x\r\n"  # 6
        "\r\n"  # 7
        'B-2,Banana,"a\nb"\r\n'  # 8-9
        "C-3,Cherry,x,extra\r\n"  # 10
        "D-4,\x01,x\r\n"  # 11
        'E-5,Elder,"\r\n\r\n"\r\n'  # 12-14
        "F-6,Fig,x,\r\n"  # 15
        "G-7,Grape,x"  # 16, no final line end
    )
    result = read(data)
    assert [(line, sku) for line, sku, *_ in result.valid] == [
        (3, "A-1"),
        (8, "B-2"),
        (12, "E-5"),
        (16, "G-7"),
    ]
    assert [(line, sku) for line, sku, _ in result.rejected] == [
        (6, None),
        (10, "C-3"),
        (11, "D-4"),
        (15, "F-6"),
    ]
    assert result.rows_read == 8


def test_batches_hold_about_size_rows_and_count_every_row_read():
    rows = "".join(f"S-{i},Name {i}\n" if i % 3 else f"S-{i},\n" for i in range(10))
    result = read(f"sku,name\n{rows}", size=4)
    assert result.batch_sizes == [4, 4, 2]
    assert result.rows_read == 10
    assert len(result.valid) == 6 and len(result.rejected) == 4


def test_reject_reasons_are_grouped_to_find_the_most_common():
    data = "sku,name,active\n" + "A,B,maybe\nC,D,nope\nE,,yes\nF,G,perhaps\nH,I,x,y\n"
    csv_file = read(data).file
    assert csv_file.reject_reasons.most_common(1) == [
        ("active is not one of true/false, 1/0, yes/no, y/n", 3)
    ]
    assert csv_file.reject_reasons["name is empty"] == 1
    assert csv_file.reject_reasons["wrong number of fields"] == 1


def test_a_line_longer_than_the_limit_refuses_the_file():
    # Checked per read of up to 1 MiB: a line a little past the limit may still get through.
    data = b"sku,name\nA-1," + b"x" * (csv_rows.MAX_LINE_BYTES + 2 * 1024 * 1024) + b"\n"
    with pytest.raises(FileRejected, match="does not look like a CSV file") as refused:
        read(data)
    assert refused.value.code == "line_too_long"  # a retry is refused


def test_a_field_longer_than_the_field_limit_rejects_its_row():
    lines = "\n".join(["y" * 1000] * (csv_rows.MAX_FIELD_CHARS // 1000 + 2))
    result = read(f'sku,name,description\nA-1,Apple,"{lines}"\nB-2,Banana,ok\n')
    assert result.rejected[0][0] == 2
    assert result.rejected[0][2].startswith("a field is longer than 1,048,576 characters")


def test_a_rejected_row_keeps_its_cells_as_the_file_had_them():
    data = 'SKU ; Name;Extra\n A-1 ;;x\nB-2;"two\nlines";y;z\nC-3;Fine;w\n"D-4;open\n'
    result = read(data)

    assert result.file.header.names == ("SKU ", " Name", "Extra")
    assert [line for line, _sku, _reason in result.rejected] == [2, 3, 6]
    assert result.rejected_cells == [[" A-1 ", "", "x"], ["B-2", "two\nlines", "y", "z"], None]


# --- text in NFC --------------------------------------------------------------------------------

NFD = partial(unicodedata.normalize, "NFD")


def test_an_nfd_file_reads_as_nfc_header_values_and_line_numbers_alike():
    text = 'SKU,Désignation,description\r\nCafé-1,Café,"Crème\r\nbrûlée"\r\nThé-2,Thé,\r\n'
    columns = {"name": "désignation"}
    nfd = read_columns(NFD(text).encode(), columns)

    assert nfd.products == [("Café-1", "Café", "Crème\r\nbrûlée", None), ("Thé-2", "Thé", "", None)]
    assert [row[0] for row in nfd.valid] == [2, 4]
    assert nfd.products == read_columns(text.encode(), columns).products


def read_columns(data: bytes, columns: dict) -> Read:
    csv_file = open_csv(BytesIO(data), columns=columns)
    valid = [row for batch in csv_file.batches() for row in batch.valid]
    return Read(csv_file, valid, [], len(valid), [], [])


# A mark right after its base at every place a block could end (e + U+0301, then a line that
# starts with a mark, which composes with nothing, then CR and LF line ends).
BLOCKS_TEXT = "sku,name\r\nA-1,Cafe\u0301 cre\u0300me\r\n\u0301B-2,Noe\u0308l\rC-3,x\n"


@pytest.mark.parametrize("block_chars", range(1, len(BLOCKS_TEXT) + 2))
def test_nfc_lines_never_cut_a_mark_from_its_base_wherever_a_block_ends(block_chars):
    text = TextIOWrapper(BytesIO(BLOCKS_TEXT.encode()), encoding="utf-8", newline="")

    lines = list(csv_rows.nfc_lines(text, block_chars))

    assert lines == ["sku,name\r\n", "A-1,Café crème\r\n", "\u0301B-2,Noël\r", "C-3,x\n"]
    assert all(unicodedata.is_normalized("NFC", line) for line in lines)
