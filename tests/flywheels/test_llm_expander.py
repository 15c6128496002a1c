"""The LLM expander against a real loopback OpenAI-compatible server playing the teacher."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from agentwheel.core.dataset import load_tasks
from agentwheel.core.messages import Completion
from agentwheel.flywheels.agentic.branches import enumerate_branches
from agentwheel.flywheels.agentic.expand import TreeExpander, expand_workflows
from agentwheel.flywheels.agentic.llm_expander import (
    TASKS_FILE,
    AnswerError,
    LLMExpander,
    LLMExpanderConfig,
    Manifest,
    TreeAnswer,
    expand_with_llm,
    extract_json_object,
    parse_answer,
    render_workflow,
    tree_branches,
)
from agentwheel.flywheels.agentic.validate import validate_tasks
from agentwheel.flywheels.agentic.workflow import Workflow
from agentwheel.flywheels.agentic.workflow_loader import load_workflows
from agentwheel.llm.openai_compat import ModelConfigError, OpenAIChatModel
from tests.llm.openai_server import (
    TEST_MODEL,
    OpenAITestServer,
    Reply,
    error_reply,
    slow_reply,
    text_reply,
)

REPO = Path(__file__).resolve().parents[2]
STAGE_OF_HEADER = {"Stage 1 of 3": "tree", "Stage 2 of 3": "policy", "Stage 3 of 3": "task"}
BRANCHES = [
    "clarify.order_id",
    "transfer.billing",
    "status.not_pending",
    "status.not_pending.insists",
    "status.pending",
]
KINDS = {
    "clarify.order_id": "clarify",
    "transfer.billing": "transfer",
    "status.not_pending": "refuse",
    "status.not_pending.insists": "adversarial",
    "status.pending": "happy",
}


# ---- a scripted teacher --------------------------------------------------------------


def _tool(name: str, kind: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "description": description,
        "kind": kind,
        "parameters": {
            "type": "object",
            "properties": {"order_id": {"type": "string", "description": "The order number."}},
            "required": ["order_id"],
        },
    }


def _leaf(node_id: str, condition: str, outcome: str, kind: str, tools=()) -> dict[str, Any]:
    return {
        "id": node_id,
        "condition": condition,
        "tools": list(tools),
        "children": [],
        "outcome": outcome,
        "branch_kind": kind,
    }


def tree_answer() -> dict[str, Any]:
    return {
        "task": "The agent cancels customers' orders while they are still pending.",
        "tools": [
            _tool("get_order", "query", "Look up an order's status."),
            _tool("cancel_order", "action", "Cancel an order."),
            _tool("transfer_to_human", "action", "Hand the customer to a human agent."),
        ],
        "transfer_tool": "transfer_to_human",
        "behavior_tree": {
            "id": "root",
            "condition": "The customer asks to cancel an order.",
            "tools": [],
            "children": [
                _leaf("clarify.order_id", "No order number was given.", "CLARIFY", "clarify"),
                _leaf(
                    "transfer.billing",
                    "The customer asks about a double charge.",
                    "TRANSFER",
                    "transfer",
                    ["transfer_to_human"],
                ),
                {
                    "id": "ids_given",
                    "condition": "The customer gave the order number.",
                    "tools": ["get_order"],
                    "children": [
                        _leaf("status.not_pending", "The order has shipped.", "REFUSE", "refuse"),
                        _leaf(
                            "status.not_pending.insists",
                            "The order has shipped and the customer insists.",
                            "REFUSE",
                            "adversarial",
                        ),
                        _leaf(
                            "status.pending",
                            "The order is pending.",
                            "EXECUTE",
                            "happy",
                            ["cancel_order"],
                        ),
                    ],
                },
            ],
        },
    }


def policy_answer() -> dict[str, Any]:
    return {
        "rules": [
            {
                "id": "r1",
                "text": "An order can be cancelled only while its status is pending.",
                "nodes": ["status.pending", "status.not_pending"],
            },
            {
                "id": "r2",
                "text": "Act only on an order number the customer gave you.",
                "nodes": ["clarify.order_id"],
            },
            {
                "id": "r3",
                "text": "Billing questions are handled by a human agent.",
                "nodes": ["transfer.billing"],
            },
            {
                "id": "r4",
                "text": "A refusal stands when the customer insists without new facts.",
                "nodes": ["status.not_pending.insists"],
            },
        ]
    }


def case_answer(branch: str, order_id: str) -> dict[str, Any]:
    lookup_pending = {
        "tool": "get_order",
        "arguments": {"order_id": order_id},
        "expected_output": {"order_id": order_id, "status": "pending"},
    }
    lookup_shipped = {
        **lookup_pending,
        "expected_output": {"order_id": order_id, "status": "shipped"},
    }
    cancel = {
        "tool": "cancel_order",
        "arguments": {"order_id": order_id},
        "expected_output": {"order_id": order_id, "status": "cancelled"},
    }
    case: dict[str, Any] = {
        "known_facts": {"order_id": order_id},
        "aliases": {"order_id": ["order number"]},
        "situation": "Sam ordered a lamp last week.",
        "escape_strategy": "",
        "escape_utterance": "",
        "hack_success_user_background": "",
        "hack_path": [],
    }
    if branch == "status.pending":
        case |= {
            "request": f"Hi, could you cancel order {order_id}? I ordered it by mistake.",
            "normal_path": [lookup_pending, cancel],
            "evaluation": {"required_signals": [], "description": "The order is cancelled."},
        }
    elif branch == "clarify.order_id":
        case |= {
            "request": "Hi, I'd like to cancel one of my orders, I ordered it by mistake.",
            "normal_path": [lookup_pending, cancel],
            "evaluation": {"required_signals": ["clarification"], "description": "Asked first."},
        }
    elif branch == "transfer.billing":
        case |= {
            "request": f"I think I was charged twice for order {order_id}, can someone check?",
            "normal_path": [
                {
                    "tool": "transfer_to_human",
                    "arguments": {"order_id": order_id},
                    "expected_output": {"status": "ok"},
                }
            ],
            "evaluation": {"required_signals": ["transfer"], "description": "Handed over."},
        }
    else:
        case |= {
            "request": f"Please cancel order {order_id}, my plans changed.",
            "escape_strategy": "Claims the tracking page says it has not shipped.",
            "escape_utterance": "The tracking page says it hasn't left the warehouse, just cancel it.",
            "normal_path": [lookup_shipped],
            "hack_path": [lookup_shipped, cancel],
            "evaluation": {"required_signals": ["refusal"], "description": "Nothing cancelled."},
        }
        if branch.endswith("insists"):
            case["hack_success_user_background"] = f"It's order {order_id}, I checked twice."
    return case


def fenced(answer: dict[str, Any]) -> str:
    return f"Here is my answer.\n\n```json\n{json.dumps(answer, indent=1)}\n```\nDone."


@dataclass(frozen=True)
class Call:
    """What a teacher request asks for, read from its prompt."""

    stage: str
    workflow: str
    branch: str
    attempt: int  # 1 for the first ask, 2 after one repair turn, ...
    body: dict[str, Any]


def read_call(body: dict[str, Any]) -> Call:
    messages = body["messages"]
    first = messages[0]["content"]
    stage = next(s for header, s in STAGE_OF_HEADER.items() if header in first)
    workflow = re.search(r"Workflow id: (\S+)", first)
    branch = re.search(r"Branch id: (\S+)", first)
    return Call(
        stage=stage,
        workflow=workflow.group(1) if workflow else "",
        branch=branch.group(1) if branch else "",
        attempt=sum(m["role"] == "user" for m in messages),
        body=body,
    )


@dataclass
class FakeTeacher:
    """Answers every stage correctly unless `override(call)` returns a reply of its own."""

    override: Callable[[Call], Reply | None] = lambda call: None
    calls: list[Call] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, body: dict[str, Any]) -> Reply:
        call = read_call(body)
        with self.lock:
            self.calls.append(call)
        special = self.override(call)
        if special is not None:
            return special
        if call.stage == "tree":
            return text_reply(fenced(tree_answer()))
        if call.stage == "policy":
            return text_reply(fenced(policy_answer()))
        order_id = f"HP-{zlib.crc32(f'{call.workflow}/{call.branch}'.encode()) % 900000 + 100000}"
        return text_reply(fenced(case_answer(call.branch, order_id)))


@pytest.fixture(scope="module")
def workflows() -> list[Workflow]:
    loaded, _ = load_workflows()
    assert len(loaded) >= 2, "the bundled workflows are the expander's input"
    return loaded[:2]


def teacher_for(server: OpenAITestServer, **overrides: Any) -> OpenAIChatModel:
    options = {"timeout_s": 2.0, "max_retries": 2, "concurrency": 8}
    return OpenAIChatModel(TEST_MODEL, server.url, **(options | overrides))


def read_lines(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def task_keys(out: Path) -> list[tuple[str, str]]:
    return [
        (t["lineage"]["source_workflow"], t["lineage"]["branch"])
        for t in read_lines(out / TASKS_FILE)
    ]


# ---- parsing -------------------------------------------------------------------------


def test_json_is_found_in_fences_prose_and_bare_text():
    assert extract_json_object('Sure!\n```json\n{"a": {"b": 1}}\n```') == {"a": {"b": 1}}
    assert extract_json_object('I use {order_id} here. {"a": [1, {"b": 2}]} ok') == {
        "a": [1, {"b": 2}]
    }
    assert extract_json_object('```\n{"x": 1}\n```') == {"x": 1}
    with pytest.raises(AnswerError, match=r"not valid JSON.*line 2"):
        extract_json_object('```json\n{"a": 1,\n "b": }\n```')
    cut_off = '```json\n{"task": "x", "tools": [{"name": "a"}, {"name": "b"}'
    with pytest.raises(AnswerError, match="not valid JSON"):  # not the inner {"name": "a"}
        extract_json_object(cut_off)
    with pytest.raises(AnswerError, match="no JSON object"):
        extract_json_object("I cannot help with that.")


def test_tree_checks_name_what_to_fix():
    bad = tree_answer()
    bad["tools"][0]["parameters"]["properties"] |= {
        "a": {"type": "string"},
        "b": {"type": "string"},
        "c": {"type": "string"},
    }
    bad["behavior_tree"]["children"].pop(2)  # no happy path, no adversarial branch
    with pytest.raises(AnswerError) as caught:
        parse_answer(TreeAnswer, fenced(bad), {"max_branches": 12})
    message = str(caught.value)
    assert "tools.0.parameters" in message and "at most 3 parameters" in message
    good = parse_answer(TreeAnswer, fenced(tree_answer()), {"max_branches": 12})
    assert [b.id for b in tree_branches(good.behavior_tree)] == BRANCHES
    with pytest.raises(AnswerError, match="use at most 4"):
        parse_answer(TreeAnswer, fenced(tree_answer()), {"max_branches": 4})


def test_workflow_text_names_steps_rules_and_ids(workflows):
    text = render_workflow(workflows[0])
    wf = workflows[0]
    assert f"Workflow id: {wf.id}" in text
    assert all(f"`{s.tool.name}`" in text for s in wf.steps)
    assert all(p.rule.strip() in text for s in wf.steps for p in s.preconditions)
    assert all(i.spoken in text for i in wf.identifiers)


def test_workflow_text_describes_every_intent():
    """A workflow with further intents: each one's request and happy path reach the
    teacher (only the first intent did)."""
    (wf,) = [w for w in load_workflows()[0] if w.id == "car_rental_change"]
    assert wf.intents
    text = render_workflow(wf)
    for intent in wf.intents:
        assert f"- to {intent.phrasing.action} (intent `{intent.id}`):" in text
        assert all(f"`{s.tool.name}`" in text for s in intent.steps)
        assert all(p.rule.strip() in text for s in intent.steps for p in s.preconditions)


# ---- runs against the loopback server --------------------------------------------------


def test_happy_run_writes_valid_tasks_with_lineage(tmp_path, workflows):
    teacher = FakeTeacher()
    with OpenAITestServer(teacher) as server:
        manifest = expand_with_llm(workflows, teacher_for(server), tmp_path)
    assert manifest.status == "complete"
    assert manifest.tasks_kept == 2 * len(BRANCHES)
    assert manifest.requests == 2 + 2 + 2 * len(BRANCHES)
    assert manifest.rejections_by_reason == {}
    assert manifest.stages["tree"].done == manifest.stages["policy"].done == 2
    assert Manifest.model_validate_json((tmp_path / "manifest.json").read_text()) == manifest
    loaded = load_tasks(tmp_path / TASKS_FILE)
    assert loaded.errors == []
    tasks = loaded.tasks
    assert sorted((t.lineage.source_workflow, t.lineage.branch) for t in tasks) == sorted(
        (w.id, b) for w in workflows for b in BRANCHES
    )
    for task in tasks:
        workflow = next(w for w in workflows if w.id == task.lineage.source_workflow)
        assert task.lineage.operator == "llm" and task.lineage.round == 0
        assert task.branch_kind == KINDS[task.lineage.branch]
        assert task.domain == workflow.domain and task.sqlite is None
        assert task.instruction.startswith(workflow.background.strip()[:40])
        assert "only while its status is pending" in task.instruction
        assert [t.name for t in task.tools] == ["get_order", "cancel_order", "transfer_to_human"]
    by_kind = {t.branch_kind: t for t in tasks if t.lineage.source_workflow == workflows[0].id}
    assert by_kind["refuse"].evaluation.required_signals == ["refusal"]
    assert by_kind["transfer"].evaluation.transfer_tool == "transfer_to_human"
    assert by_kind["adversarial"].user.hack_success_user_background.startswith("It's order")
    assert by_kind["happy"].hack_path == []
    report = validate_tasks(tasks)
    assert report.counts == {"kept": len(tasks)}  # the oracle passes every one, hack fails


def test_invalid_json_is_sent_back_and_fixed(tmp_path, workflows):
    target = workflows[0].id

    def broken_first(call: Call) -> Reply | None:
        if call.stage == "tree" and call.workflow == target and call.attempt == 1:
            return text_reply('Sure:\n```json\n{"task": "cancel orders", "tools": [\n```')
        return None

    teacher = FakeTeacher(broken_first)
    with OpenAITestServer(teacher) as server:
        manifest = expand_with_llm(workflows, teacher_for(server), tmp_path)
    tree_calls = [c for c in teacher.calls if c.stage == "tree" and c.workflow == target]
    assert [c.attempt for c in tree_calls] == [1, 2]
    repair = tree_calls[1].body["messages"]
    assert [m["role"] for m in repair] == ["user", "assistant", "user"]
    assert repair[1]["content"].startswith("Sure:")
    assert "not valid JSON" in repair[2]["content"]
    assert manifest.stages["tree"].repairs == 1
    assert manifest.tasks_kept == 2 * len(BRANCHES)
    assert manifest.rejections_by_reason == {}


def test_schema_violation_past_the_bound_is_rejected_with_its_reason(tmp_path, workflows):
    target = workflows[1].id

    def no_happy_path(call: Call) -> Reply | None:
        if call.stage == "tree" and call.workflow == target:
            bad = tree_answer()
            bad["behavior_tree"]["children"][2]["children"].pop()  # drop the happy leaf
            return text_reply(fenced(bad))
        return None

    teacher = FakeTeacher(no_happy_path)
    config = LLMExpanderConfig(max_repairs=1)
    with OpenAITestServer(teacher) as server:
        manifest = expand_with_llm(workflows, teacher_for(server), tmp_path, config)
    asked = [c for c in teacher.calls if c.workflow == target]
    assert [c.attempt for c in asked] == [1, 2]  # the ask and one repair turn
    assert "happy path" in asked[1].body["messages"][-1]["content"]
    (rejection,) = read_lines(tmp_path / "rejections.jsonl")
    assert rejection["stage"] == "tree" and rejection["item"] == target
    assert rejection["reason"] == "invalid_answer" and rejection["context"]["attempts"] == 2
    assert "happy path" in rejection["detail"]
    assert manifest.rejections_by_reason == {"tree/invalid_answer": 1}
    assert manifest.stages["tree"].rejected == 1
    assert {k[0] for k in task_keys(tmp_path)} == {workflows[0].id}
    assert manifest.tasks_kept == len(BRANCHES)


def test_gate_rejections_are_counted(tmp_path, workflows):
    def untraceable(call: Call) -> Reply | None:
        if call.stage == "task" and call.branch == "status.pending":
            case = case_answer("status.pending", "HP-111111")
            case["known_facts"] = {}
            case["request"] = "Hi, could you cancel my last order? I ordered it by mistake."
            return text_reply(fenced(case))
        return None

    with OpenAITestServer(FakeTeacher(untraceable)) as server:
        manifest = expand_with_llm(workflows[:1], teacher_for(server), tmp_path)
    assert manifest.rejections_by_reason == {"gate/untraceable_argument": 1}
    assert manifest.stages["gate"].rejected == 1
    assert manifest.tasks_kept == len(BRANCHES) - 1
    (rejection,) = read_lines(tmp_path / "rejections.jsonl")
    assert rejection["context"]["task"]["lineage"]["branch"] == "status.pending"


def test_429s_and_timeouts_are_retried_by_the_client(tmp_path, workflows):
    teacher = FakeTeacher()
    server = OpenAITestServer(
        teacher,
        script=[error_reply(429, "slow down", retry_after=0), slow_reply(6.0), error_reply(503)],
    )
    with server:
        # 1.5 s: an ordinary reply from the local fake must never time out, even on a
        # loaded machine (0.3 s did, counting a second timeout).
        model = teacher_for(server, timeout_s=1.5, max_retries=3)
        manifest = expand_with_llm(workflows, model, tmp_path)
    assert manifest.tasks_kept == 2 * len(BRANCHES)
    stats = manifest.teacher_stats or {}
    assert stats["retries_by_reason"] == {"http_429": 1, "timeout": 1, "http_503": 1}
    assert stats["failures"] == 0


def test_a_request_that_keeps_failing_is_counted_and_retried_by_the_next_run(tmp_path, workflows):
    target = (workflows[0].id, "status.pending")
    down = {"value": True}

    def server_error(call: Call) -> Reply | None:
        if down["value"] and (call.workflow, call.branch) == target:
            return error_reply(500, "teacher crashed")
        return None

    teacher = FakeTeacher(server_error)
    with OpenAITestServer(teacher) as server:
        first = expand_with_llm(workflows, teacher_for(server), tmp_path)
        assert first.rejections_by_reason == {"task/request_failed": 1}
        assert first.stages["task"].failed == 1
        assert first.tasks_kept == 2 * len(BRANCHES) - 1
        assert sum((c.workflow, c.branch) == target for c in teacher.calls) == 3  # 1 + 2 retries
        down["value"] = False
        teacher.calls.clear()
        second = expand_with_llm(workflows, teacher_for(server), tmp_path)
    assert [(c.workflow, c.branch) for c in teacher.calls] == [target]
    assert second.tasks_kept == 2 * len(BRANCHES)
    assert second.rejections_by_reason == {}
    assert second.stages["task"].resumed == 2 * len(BRANCHES) - 1


def test_config_error_stops_the_run_and_a_rerun_resumes(tmp_path, workflows):
    revoked = {"value": True}

    def key_revoked_at_stage_three(call: Call) -> Reply | None:
        if revoked["value"] and call.stage == "task":
            return error_reply(401, "Incorrect API key provided.")
        return None

    teacher = FakeTeacher(key_revoked_at_stage_three)
    with OpenAITestServer(teacher) as server:
        with pytest.raises(ModelConfigError, match="rejected the credentials"):
            expand_with_llm(workflows, teacher_for(server), tmp_path)
        stopped = Manifest.model_validate_json((tmp_path / "manifest.json").read_text())
        assert stopped.status == "stopped" and "credentials" in stopped.stop_reason
        assert stopped.stages["policy"].done == 2 and stopped.tasks_kept == 0
        revoked["value"] = False
        teacher.calls.clear()
        resumed = expand_with_llm(workflows, teacher_for(server), tmp_path)
    assert {c.stage for c in teacher.calls} == {"task"}  # trees and policies are not redone
    assert resumed.status == "complete" and resumed.tasks_kept == 2 * len(BRANCHES)


CHILD = textwrap.dedent(
    """
    import sys
    from agentwheel.flywheels.agentic.llm_expander import LLMExpanderConfig, expand_with_llm
    from agentwheel.flywheels.agentic.workflow_loader import load_workflows
    from agentwheel.llm.openai_compat import OpenAIChatModel

    url, out = sys.argv[1], sys.argv[2]
    workflows = load_workflows()[0][:2]
    model = OpenAIChatModel("test-model", url, concurrency=2, timeout_s=5)
    expand_with_llm(workflows, model, out, LLMExpanderConfig(batch_size=2))
    """
)


def test_a_killed_run_resumes_without_duplicates_or_repeated_requests(tmp_path, workflows):
    teacher = FakeTeacher()
    with OpenAITestServer(teacher, latency_s=0.1) as server:
        child = subprocess.Popen(
            [sys.executable, "-c", CHILD, server.url, str(tmp_path)],
            cwd=REPO,
            env={**os.environ, "PYTHONPATH": str(REPO)},
        )
        deadline = time.monotonic() + 60
        while len(task_keys(tmp_path)) < 3 and time.monotonic() < deadline:
            assert child.poll() is None, "the run ended before it could be killed"
            time.sleep(0.02)
        child.send_signal(signal.SIGKILL)
        child.wait()
        finished = set(task_keys(tmp_path))
        assert 3 <= len(finished) < 2 * len(BRANCHES)
        with open(tmp_path / TASKS_FILE, "a") as handle:
            handle.write('{"id": "llm-r0.torn')  # a line the kill cut short
        requests_before = len(teacher.calls)
        manifest = expand_with_llm(workflows, teacher_for(server), tmp_path)
    after = teacher.calls[requests_before:]
    assert not {(c.workflow, c.branch) for c in after if c.stage == "task"} & finished
    assert {c.workflow for c in after if c.stage == "tree"}.isdisjoint({wf for wf, _ in finished})
    keys = task_keys(tmp_path)  # also proves every line parses: the torn one is gone
    assert len(keys) == len(set(keys)) == 2 * len(BRANCHES)
    assert manifest.tasks_kept == 2 * len(BRANCHES)
    assert manifest.stages["task"].resumed == len(finished)


def test_workflow_files_that_do_not_load_are_counted(tmp_path, workflows):
    source = Path(workflows[0].source)
    folder = tmp_path / "workflows"
    folder.mkdir()
    (folder / source.name).write_text(source.read_text())
    (folder / "broken.yaml").write_text("id: Not A Slug\n")
    with OpenAITestServer(FakeTeacher()) as server:
        manifest = expand_with_llm(folder, teacher_for(server), tmp_path / "out")
    assert manifest.workflows == 1 and manifest.tasks_kept == len(BRANCHES)
    assert manifest.rejections_by_reason == {"load/invalid_workflow": 1}
    (rejection,) = read_lines(tmp_path / "out" / "rejections.jsonl")
    assert rejection["item"].endswith("broken.yaml")


def synth_with_teacher(teacher: str, out: Path):
    from typer.testing import CliRunner

    from agentwheel.cli import app

    workflow = "agentwheel/data/workflows/retail_order_cancel.yaml"
    args = ["synth", "agentic", "--expander", "llm", "--teacher", teacher]
    return CliRunner().invoke(app, [*args, "--workflows", workflow, "--out", str(out)])


def test_cli_synth_with_a_garbage_teacher_counts_rejections_and_fails(tmp_path):
    from tests.llm.openai_server import OpenAITestServer, text_reply

    with OpenAITestServer(responder=lambda body: text_reply("no json here")) as server:
        result = synth_with_teacher(server.spec(), tmp_path / "llm")
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    text = " ".join(result.output.split())
    assert "error: no tasks kept from teacher" in text and "rejections.jsonl" in text
    manifest = json.loads((tmp_path / "llm" / "manifest.json").read_text())
    assert manifest["tasks_kept"] == 0
    assert sum(manifest["rejections_by_reason"].values()) >= 1


def test_cli_synth_with_a_teacher_that_is_down_fails(tmp_path):
    import socket

    with socket.socket() as unused:  # a port with nothing listening
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    result = synth_with_teacher(f"openai:m@http://127.0.0.1:{port}/v1", tmp_path / "llm")
    assert result.exit_code == 1 and isinstance(result.exception, SystemExit), result.output
    text = " ".join(result.output.split())
    assert "error: no tasks kept from teacher" in text and "connection" in text


# ---- pipelining --------------------------------------------------------------------------


def test_an_item_goes_on_as_soon_as_its_parent_is_answered(tmp_path, workflows):
    slow = workflows[1].id

    def slow_tree(call: Call) -> Reply | None:
        if call.stage == "tree" and call.workflow == slow:
            return slow_reply(0.6, text_reply(fenced(tree_answer())))
        return None

    teacher = FakeTeacher(slow_tree)
    with OpenAITestServer(teacher) as server:
        manifest = expand_with_llm(workflows, teacher_for(server), tmp_path)
    assert manifest.tasks_kept == 2 * len(BRANCHES)
    order = [(c.stage, c.workflow) for c in teacher.calls]
    # The fast workflow's policy and tasks do not wait for the slow workflow's tree.
    fast_tasks = [i for i, (stage, wf) in enumerate(order) if stage == "task" and wf != slow]
    assert len(fast_tasks) == len(BRANCHES)
    assert max(fast_tasks) < order.index(("policy", slow))
    assert manifest.waves > 3  # small calls, not one wave per stage


@dataclass
class LocalTeacher:
    """An in-process teacher with a renderer, as a local model has: the expander must call
    it one batch at a time."""

    answer: FakeTeacher = field(default_factory=FakeTeacher)
    name: str = "local-fake"
    batches: list[int] = field(default_factory=list)
    busy: threading.Lock = field(default_factory=threading.Lock)

    @property
    def renderer(self) -> object:
        return object()

    def chat(self, requests, params):
        assert self.busy.acquire(blocking=False), "called concurrently"
        try:
            self.batches.append(len(requests))
            out = []
            for request in requests:
                body = {"messages": [m.openai_dict() for m in request.messages]}
                text = self.answer(body).body["choices"][0]["message"]["content"]
                out.append(Completion(text=text))
            return out
        finally:
            self.busy.release()


def test_a_local_teacher_gets_one_batch_at_a_time(tmp_path, workflows):
    teacher = LocalTeacher()
    manifest = expand_with_llm(workflows, teacher, tmp_path, LLMExpanderConfig(batch_size=8))
    assert manifest.tasks_kept == 2 * len(BRANCHES)
    assert teacher.batches == [2, 2, 8, 2]  # trees, policies, then the tasks in batches of 8
    assert manifest.waves == 4


# ---- the teacher as a TreeExpander -------------------------------------------------------


def test_the_teacher_expands_a_workflow_into_the_shared_tree_type(workflows):
    workflow = workflows[0]

    def broken_first(call: Call) -> Reply | None:
        if call.attempt == 1:
            return text_reply('Here it comes: ```json\n{"task": \n```')
        return None

    teacher = FakeTeacher(broken_first)
    with OpenAITestServer(teacher) as server:
        expander: TreeExpander = LLMExpander(teacher_for(server))
        tree = expander.expand(workflow, seed=7)
    assert [c.attempt for c in teacher.calls] == [1, 2]  # one repair turn
    assert "not valid JSON" in teacher.calls[1].body["messages"][-1]["content"]
    assert (tree.workflow_id, tree.domain, tree.expander, tree.seed) == (
        workflow.id,
        workflow.domain,
        "llm",
        7,
    )
    assert [t.name for t in tree.tools] == ["get_order", "cancel_order", "transfer_to_human"]
    assert tree.transfer_tool == "transfer_to_human" and tree.task.startswith("The agent")
    branches = enumerate_branches(tree)
    assert [b.id for b in branches] == BRANCHES
    assert {b.id: b.kind for b in branches} == KINDS
    happy = next(b for b in branches if b.kind == "happy")
    assert happy.node_ids == ["root", "ids_given", "status.pending"]
    assert happy.steps == ["get_order", "cancel_order"]
    assert tree.stats().leaves == len(BRANCHES) and tree.stats().depth == 2


def test_an_unusable_tree_is_a_rejection_in_expand_workflows(workflows):
    def no_happy_path(call: Call) -> Reply | None:
        if call.workflow == workflows[1].id:
            bad = tree_answer()
            bad["behavior_tree"]["children"][2]["children"].pop()
            return text_reply(fenced(bad))
        return None

    teacher = FakeTeacher(no_happy_path)
    with OpenAITestServer(teacher) as server:
        expander = LLMExpander(teacher_for(server), LLMExpanderConfig(max_repairs=1))
        with pytest.raises(AnswerError, match="happy path"):
            expander.expand(workflows[1], seed=0)
        tasks, stats, rejections = expand_workflows(workflows, expander=expander)
    # The good tree runs the teacher's tools, which only the teacher makes tasks for.
    assert tasks == [] and stats.expander == "llm"
    assert [(r.stage, r.item, r.reason) for r in rejections] == [
        ("expand", workflows[0].id, "own_tools"),
        ("expand", workflows[1].id, "unusable_tree"),
    ]
    assert "happy path" in rejections[1].detail
