import json

import pytest

from cascade_studio.core.tasks import (
    TaskImportError,
    bfcl_schema,
    detect_format,
    parse_bfcl,
    parse_bfcl_answers,
    parse_csv,
    parse_native,
)

TOOL = {"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object", "properties": {}}}}


def native_line(**kw):
    row = {"id": "t1", "category": "weather", "messages": [{"role": "user", "content": "Weather in Oslo?"}],
           "tools": [TOOL]}
    row.update(kw)
    return json.dumps(row)


def test_native_round_trip():
    tasks = parse_native(native_line() + "\n\n" + native_line(id="t2", expected={"x": 1}), "a.jsonl")
    assert [t.id for t in tasks] == ["t1", "t2"] and tasks[1].expected == {"x": 1}
    assert tasks[0].prompt == "Weather in Oslo?" and tasks[0].tool_names == ["get_weather"]


@pytest.mark.parametrize("line, field", [
    ('{"id": "a", "category": "c", "messages": []', None),  # broken JSON
    (json.dumps({"id": "a", "messages": [], "tools": []}), "category"),
    (native_line(messages=[]), "messages"),
    (native_line(messages=[{"role": "robot", "content": "x"}]), "messages[0].role"),
    (native_line(tools=[{"type": "function", "function": {"name": "bad name!"}}]), "tools[0].function.name"),
    (native_line(tools={"a": 1}), "tools"),
])
def test_native_errors_name_file_line_field(line, field):
    text = native_line(id="ok") + "\n" + line
    with pytest.raises(TaskImportError) as err:
        parse_native(text, "tasks.jsonl")
    assert err.value.file == "tasks.jsonl" and err.value.line == 2 and err.value.field == field
    assert str(err.value).startswith("tasks.jsonl:2")


def test_duplicate_ids_in_one_file():
    with pytest.raises(TaskImportError) as err:
        parse_native(native_line() + "\n" + native_line(), "x.jsonl")
    assert "appears twice" in str(err.value)


def test_bfcl_types_and_names_are_mapped():
    schema = {"type": "dict", "properties": {"x": {"type": "float"}, "p": {"type": "tuple", "items": {"type": "float"}},
                                             "v": {"type": "any"}, "d": {"type": "dict", "properties": {}}}}
    assert bfcl_schema(schema) == {"type": "object", "properties": {
        "x": {"type": "number"}, "p": {"type": "array", "items": {"type": "number"}}, "v": {},
        "d": {"type": "object", "properties": {}}}}
    line = json.dumps({"id": "simple_python_1", "question": [[{"role": "user", "content": "5!"}]],
                       "function": [{"name": "math.factorial", "description": "f",
                                     "parameters": {"type": "dict", "properties": {"number": {"type": "integer"}}}}]})
    answers = parse_bfcl_answers(json.dumps({"id": "simple_python_1", "ground_truth": [{"math.factorial": {"number": [5]}}]}),
                                 "a.json")
    task = parse_bfcl(line, "BFCL_v4_simple_python.json", answers)[0]
    assert task.category == "simple_python" and task.tool_names == ["math_factorial"]
    assert task.tools[0]["function"]["parameters"]["type"] == "object"
    assert task.expected == [{"math_factorial": {"number": [5]}}]
    assert parse_bfcl(line, "BFCL_v4_irrelevance.json", irrelevance=True)[0].expected == []


def test_csv_needs_columns_and_gives_stable_ids():
    text = "prompt,category\nHello there,chat\n"
    a, b = parse_csv(text, "x.csv"), parse_csv(text, "x.csv")
    assert a[0].id == b[0].id and a[0].messages == [{"role": "user", "content": "Hello there"}]
    with pytest.raises(TaskImportError) as err:
        parse_csv("question,category\nx,y\n", "x.csv")
    assert err.value.field == "prompt"
    with pytest.raises(TaskImportError) as err:
        parse_csv("prompt,category\nx,\n", "x.csv")
    assert err.value.line == 2 and err.value.field == "category"


def test_detect_format():
    assert detect_format("a,b\n", "x.csv") == "csv"
    assert detect_format(json.dumps({"id": 1, "question": [], "function": []}), "x.json") == "bfcl"
    assert detect_format(native_line(), "x.jsonl") == "native"
    with pytest.raises(TaskImportError):
        detect_format("not json", "x.txt")
