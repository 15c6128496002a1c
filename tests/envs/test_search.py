import hashlib
import json

import pytest

from agentwheel.core.industrial import AnswerSpec, SearchWorld
from agentwheel.core.task import Task
from agentwheel.envs.answer_check import answer_matches, output_holds_answer
from agentwheel.envs.calculator import CalculatorError, calculate
from agentwheel.envs.knowledge_base import generate_knowledge_base
from agentwheel.envs.search import OPEN, SEARCH, SearchTools
from agentwheel.envs.search_index import SearchIndex, load_collection, read_documents
from agentwheel.envs.tools import is_tool_error
from agentwheel.envs.worlds import SUBMIT_ANSWER


def _digest(kb) -> str:
    return hashlib.sha256(json.dumps(kb.documents).encode()).hexdigest()


def test_knowledge_base_is_large_and_deterministic_from_its_seed():
    a, b = generate_knowledge_base(seed=3), generate_knowledge_base(seed=3)
    assert len(a.documents) == 10_000
    assert len({d["doc_id"] for d in a.documents}) == 10_000
    assert _digest(a) == _digest(b)
    assert _digest(generate_knowledge_base(seed=4)) != _digest(a)


def test_a_project_page_is_found_by_its_name_and_links_to_its_lead():
    kb = generate_knowledge_base(seed=0, docs=1000)
    index = load_collection("kb?seed=0&docs=1000")
    assert index.size == 1000
    project = next(iter(kb.projects.values()))
    hits = [h.doc_id for h in index.search(project.name, 5)]
    assert project.id in hits[:2]
    page = index.get(project.id)
    assert page is not None and f"({project.lead})" in page.text


def test_any_query_text_is_a_valid_query():
    index = load_collection("kb?seed=0&docs=1000")
    for query in ['"unclosed', "NEAR(a b", "a AND OR *", "", "***"]:
        assert isinstance(index.search(query, 3), list)


def test_a_users_folder_and_jsonl_become_collections(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# Refund policy\nRefunds take 14 days.")
    (tmp_path / "docs" / "b.txt").write_text("Shipping\nWe ship to 40 countries.")
    (tmp_path / "docs" / "skip.bin").write_text("refunds")
    docs = read_documents(tmp_path / "docs")
    assert [d.doc_id for d in docs] == ["a.md", "b.txt"]
    assert docs[0].title == "Refund policy"
    lines = [{"id": "x1", "title": "Refunds", "text": "Refunds take 14 days."}]
    (tmp_path / "d.jsonl").write_text("\n".join(json.dumps(x) for x in lines))
    index = SearchIndex(read_documents(tmp_path / "d.jsonl"))
    assert [h.doc_id for h in index.search("how long do refunds take", 3)] == ["x1"]
    (tmp_path / "bad.jsonl").write_text('{"id": "x"}')
    with pytest.raises(ValueError, match=r"bad\.jsonl:1"):
        read_documents(tmp_path / "bad.jsonl")


def test_calculator_does_arithmetic_and_nothing_else():
    assert calculate("1200000 + 850000") == 2050000
    assert calculate("(3 + 4) * 2 / 7") == 2
    for bad in ["__import__('os').system('true')", "9**9**9", "1/0", "x + 1", "[1]"]:
        with pytest.raises(CalculatorError):
            calculate(bad)


@pytest.mark.parametrize(
    ("spec", "given", "ok"),
    [
        (AnswerSpec(kind="text", value="Lisbon"), "lisbon.", True),
        (AnswerSpec(kind="text", value="Lisbon"), "Lisbon or Oslo", False),
        (AnswerSpec(kind="number", value=2050000, tolerance=0.5), "€2,050,000 EUR", True),
        (AnswerSpec(kind="number", value=2050000, tolerance=0.5), "2050001", False),
        (AnswerSpec(kind="set", value=["Oslo", "Lisbon"]), "Lisbon, Oslo", True),
        (AnswerSpec(kind="set", value=["Oslo", "Lisbon"]), "Lisbon, Oslo, Perth", False),
        (AnswerSpec(kind="list", value=["Oslo", "Lisbon"]), "Lisbon, Oslo", False),
        (AnswerSpec(kind="list", value=[3.5, 2]), "3.50 and 2", True),
        (AnswerSpec(kind="absent", value="not in the data"), "Not in the data.", True),
        (AnswerSpec(kind="absent", value="not in the data"), "4756", False),
    ],
)
def test_answer_rules(spec, given, ok):
    assert answer_matches(spec, given) is ok


def test_an_output_holds_the_answer_only_when_it_has_the_value():
    spec = AnswerSpec(kind="number", value=412.5, tolerance=0.01)
    assert output_holds_answer(spec, json.dumps({"rows": [[412.5000001]]}))
    assert not output_holds_answer(spec, json.dumps({"rows": [[41.25]]}))
    assert output_holds_answer(AnswerSpec(kind="set", value=["a b", "c"]), '["A b", "c", "d"]')


def test_search_tools_return_typed_errors_and_take_one_answer():
    tools = SearchTools(SearchWorld(collection="kb?seed=0&docs=1000"))
    assert is_tool_error(tools.call(OPEN, {"doc_id": "nope"}))
    assert is_tool_error(tools.call(SEARCH, {"query": "x", "k": 500}))
    assert not is_tool_error(tools.call(SUBMIT_ANSWER, {"answer": "Oslo"}))
    again = tools.call(SUBMIT_ANSWER, {"answer": "Lisbon"})
    assert is_tool_error(again) and again["error"] == "duplicate_action"
    assert tools.ledger == ['submit_answer:{"answer":"Oslo"}']


def test_a_workflow_task_keeps_its_bytes():
    from agentwheel.core.dataset import load_tasks

    task = load_tasks("fixtures").tasks[0]
    text = task.model_dump_json()
    assert '"search"' not in text and '"analysis"' not in text and '"answer"' not in text
    assert Task.model_validate_json(text).model_dump_json() == text
