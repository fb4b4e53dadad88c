"""The import options as a form (and the command line) sends them, and as a JSON body does.

The OpenAPI document describes each as `options.py` reads it; schemathesis found the server
taking values the document refused (`plan=0` in a form, an empty `max_invalid` in JSON, a column
name with a control character, which the job then gave back against its own schema).
"""

import pytest

from product_importer.errors import Invalid
from product_importer.imports import options


def refused(values: dict, *, json_body: bool = False) -> dict:
    """Why `values` are refused, by option."""
    with pytest.raises(Invalid) as caught:
        options.parse(values, json_body=json_body)
    return caught.value.details


@pytest.mark.parametrize(("word", "plan"), [("true", True), ("FALSE", False), ("True", True)])
def test_a_form_says_plan_true_or_false(word, plan):
    assert options.parse({"plan": word}) == {"plan": plan}


# Not 1 or 0: the fuzzer sends the number 0, which the document refuses, as the text "0".
@pytest.mark.parametrize("word", ["0", "1", "yes", "maybe", " true", "\x1ctrue", "true\n", " "])
def test_a_form_refuses_any_other_plan(word):
    assert refused({"plan": word}) == {"plan": "true or false."}


def test_an_empty_form_field_is_an_option_not_given():
    assert options.parse({"plan": "", "max_invalid": "", "columns": ""}) == {}


@pytest.mark.parametrize("plan", ["true", 1, 0, ""])
def test_json_takes_plan_as_a_boolean_only(plan):
    assert refused({"plan": plan}, json_body=True) == {"plan": "true or false (a JSON boolean)."}


def test_json_null_is_an_option_not_given():
    assert options.parse({"plan": None, "max_invalid": None, "columns": None}, json_body=True) == {}
    assert options.parse({"plan": False}, json_body=True) == {"plan": False}


@pytest.mark.parametrize(
    ("given", "kept"), [(" 5 %", "5%"), ("100", "100"), ("0.5%", "0.5%"), ("100.0%", "100.0%")]
)
def test_max_invalid_is_a_count_or_a_percentage(given, kept):
    assert options.parse({"max_invalid": given}) == {"max_invalid": kept}


@pytest.mark.parametrize("given", ["\n5", "5\t", "\u0665", "101%", "5%%", "1" * 13, "-1"])
def test_max_invalid_refuses_other_white_space_digits_and_numbers(given):
    assert set(refused({"max_invalid": given})) == {"max_invalid"}


def test_json_max_invalid_may_be_a_number_but_not_empty():
    assert options.parse({"max_invalid": 100}, json_body=True) == {"max_invalid": "100"}
    for value in ("", True, -1, 10**12, 1.5):
        assert set(refused({"max_invalid": value}, json_body=True)) == {"max_invalid"}, value


def test_a_column_name_with_a_control_character_is_refused_and_located():
    why = refused({"columns": {"sku": "Item\x03Code"}}, json_body=True)["columns"]

    assert why == (
        "The column for sku must not hold control characters. Remove the invisible U+0003, "
        "character 5."
    )


@pytest.mark.parametrize("name", ["", "  ", "\ufeff", "\u3000", "x" * 256])
def test_a_blank_or_long_column_name_is_refused(name):
    why = refused({"columns": {"sku": name}}, json_body=True)["columns"]
    assert why == "The column for sku must be a header name of the file."


def test_a_column_name_is_trimmed():
    given = {"columns": {"sku": " Item Code ", "description": None}}
    assert options.parse(given, json_body=True) == {
        "columns": {"sku": "Item Code", "description": None}
    }


def test_columns_are_json_text_in_a_form_and_an_object_in_json():
    text = '{"sku": "Item Code"}'
    assert options.parse({"columns": text}) == {"columns": {"sku": "Item Code"}}
    assert set(refused({"columns": text}, json_body=True)) == {"columns"}


def test_a_column_name_holding_a_lone_surrogate_is_refused():
    # JSON text in a form takes "\ud800": the job saved it, and the audit page then failed.
    why = refused({"columns": '{"sku": "Item \\ud800"}'})["columns"]
    assert why == "The column for sku must be Unicode text, without a lone surrogate."


def test_columns_nested_a_thousand_deep_are_refused_as_not_an_object():
    # Python's JSON parser raises RecursionError there, not ValueError: it was a 500.
    why = refused({"columns": "[" * 100_000})["columns"]
    assert why == 'A JSON object such as {"sku": "Item Code"}.'
