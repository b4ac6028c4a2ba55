import json
from pathlib import Path

import pytest

from cascade_studio.core.agreement import bfcl_correct
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


# -- every published BFCL layout (small samples written in each: tests/data/bfcl_layouts) ---------------
LAYOUTS = Path(__file__).resolve().parents[1] / "data" / "bfcl_layouts"
V1 = LAYOUTS / "gorilla_openfunctions_v1"


def _load(path):
    from cascade_studio.services.task_import import load_tasks  # the importer: file + its possible_answer

    return load_tasks(path)


def _call(name, **arguments):
    return {"name": name, "arguments": arguments}


@pytest.mark.parametrize(("file", "category", "calls"), [
    (V1 / "gorilla_openfunctions_v1_test_simple.json", "simple",
     [[_call("calculate_triangle_area", base=10, height=5)], [_call("math_factorial", number=5)]]),
    (V1 / "gorilla_openfunctions_v1_test_parallel_function.json", "parallel",
     [[_call("spotify_play", artist="Maroon 5", duration=15), _call("spotify_play", artist="Taylor Swift", duration=20)],
      [_call("calculate_bmi", height=6, weight=80), _call("calculate_bmi", height=5.6, weight=60)]]),
    (V1 / "gorilla_openfunctions_v1_test_multiple_function.json", "multiple",
     [[_call("update_user_info", user_id=43523, update_info={"name": "John Doe", "email": "johndoe@email.com"})]]),
    (V1 / "gorilla_openfunctions_v1_test_relevance.json", "irrelevance", [[]]),
    (LAYOUTS / "BFCL_v1_simple.json", "simple", [[_call("calculate_triangle_area", base=10, height=5, unit="units")]]),
    (LAYOUTS / "BFCL_v2_live_multiple.json", "live_multiple", [[_call("get_weather", city="paris, france")]]),
    (LAYOUTS / "BFCL_v2_live_irrelevance.json", "live_irrelevance", [[]]),
    (LAYOUTS / "BFCL_v3_parallel_multiple.json", "parallel_multiple",
     [[_call("get_stock_price", symbol="AAPL"), _call("get_weather", city="Oslo")]]),
    (LAYOUTS / "BFCL_v4_simple_python.json", "simple_python", [[_call("math_factorial", number=5)]]),
])
def test_every_bfcl_layout_imports(file, category, calls):
    tasks = _load(file)
    assert [t.category for t in tasks] == [category] * len(calls)
    for task, right in zip(tasks, calls, strict=True):
        assert task.messages[-1]["role"] == "user" and task.prompt
        assert task.tools and all(t["function"]["parameters"]["type"] == "object" for t in task.tools)
        assert isinstance(task.expected, list)
        assert bfcl_correct(right, task.expected, task.tools), (task.id, task.expected)
        if right:  # a wrong value is still told apart
            wrong = [{**right[0], "arguments": {k: "?" for k in right[0]["arguments"]}}] + right[1:]
            assert not bfcl_correct(wrong, task.expected, task.tools)


def test_bfcl_v1_layout_details():
    simple = _load(V1 / "gorilla_openfunctions_v1_test_simple.json")
    assert [t.id for t in simple] == ["simple_0", "simple_1"]  # no ids: category and line
    assert simple[0].messages == [{"role": "user", "content": "Find the area of a triangle with a base of 10 units "
                                                              "and height of 5 units."}]
    assert simple[1].expected == [{"math_factorial": {"number": [5]}}]
    parallel = _load(V1 / "gorilla_openfunctions_v1_test_parallel_function.json")
    assert parallel[0].id == "parallel_0"
    assert parallel[0].expected == [{"spotify_play": {"artist": ["Taylor Swift"], "duration": [20]}},
                                    {"spotify_play": {"artist": ["Maroon 5"], "duration": [15]}}]
    assert [next(iter(c)) for c in parallel[1].expected] == ["calculate_bmi", "calculate_bmi"]  # "calculate_bmi 1"
    v2 = _load(LAYOUTS / "BFCL_v2_live_multiple.json")[0]
    assert [m["role"] for m in v2.messages] == ["system", "user"]


def test_bfcl_answer_errors_name_file_line_and_field():
    with pytest.raises(TaskImportError) as err:
        parse_bfcl_answers('{"id": "a", "ground_truth": [{"f": {"x": [1]}}]}\n{"id": "b", "ground_truth": "f(x=1)"}',
                           "answers.json")
    assert str(err.value).startswith("answers.json:2: ground_truth: must be a list of calls")
    with pytest.raises(TaskImportError) as err:
        parse_bfcl_answers('{"id": "a"}', "answers.json")
    assert str(err.value).startswith("answers.json:1: ground_truth: is missing")
    with pytest.raises(TaskImportError) as err:
        parse_bfcl('{"id": "x_1", "question": 3, "function": []}', "t.json")
    assert str(err.value).startswith("t.json:1: question: must be")
    with pytest.raises(TaskImportError) as err:
        parse_bfcl('{"id": "x_1", "question": "hi", "function": "f"}', "t.json")
    assert str(err.value).startswith("t.json:1: function: must be")
