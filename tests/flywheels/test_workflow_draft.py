"""`workflow draft`: a teacher behind a real loopback OpenAI-compatible server writes a
workflow YAML from a procedure; the strict loader's errors go back until one loads."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from agentwheel.cli import app
from agentwheel.flywheels.agentic.workflow_draft import DraftConfig, draft_workflow
from agentwheel.flywheels.agentic.workflow_loader import load_workflow
from agentwheel.llm.openai_compat import OpenAIChatModel
from tests.llm.openai_server import TEST_MODEL, OpenAITestServer, last_user_message, text_reply

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "docs" / "examples"
GOOD = (EXAMPLES / "bike_rental_damage.yaml").read_text()
PROCEDURE = (EXAMPLES / "bike_rental_damage.md").read_text()
QUOTED = '["My brother rented it for me, so the rental is as good as mine."]'
# The same file with one claim unquoted in a flow list: YAML splits it at the comma.
SPLIT = GOOD.replace(QUOTED, QUOTED.replace('"', ""))
BOOLEAN = GOOD.replace('value: "no"', "value: no")


def fenced(text: str) -> str:
    return f"Here is the workflow.\n\n```yaml\n{text}```\n"


def teacher(server: OpenAITestServer) -> OpenAIChatModel:
    return OpenAIChatModel(TEST_MODEL, server.url, timeout_s=5.0, max_retries=0)


def test_a_rejected_answer_goes_back_with_the_loader_errors(tmp_path):
    assert SPLIT != GOOD and BOOLEAN != GOOD
    out = tmp_path / "drafts" / "bike.yaml"
    script = [text_reply(fenced(SPLIT)), text_reply(fenced(GOOD))]
    with OpenAITestServer(script=script) as server:
        result = draft_workflow(PROCEDURE, teacher(server), out, DraftConfig(attempts=3))
        bodies = server.chat_bodies
    assert result.attempts == 2 and len(bodies) == 2
    assert result.workflow is not None and result.workflow.id == "bike_rental_damage"
    [failure] = result.failures
    assert "steps.1.preconditions.0.false_claims.0" in failure
    # The first prompt carries the procedure; the second, the loader's own message.
    assert "charges the repair to the rental's deposit" in last_user_message(bodies[0])
    fix = last_user_message(bodies[1])
    assert "steps.1.preconditions.0.false_claims.0" in fix and "pieces of one sentence" in fix
    assert bodies[1]["messages"][-2]["content"] == fenced(SPLIT)  # its own answer, before
    assert load_workflow(out).id == "bike_rental_damage"
    assert out.read_text() == GOOD


def test_nothing_is_written_when_no_answer_loads(tmp_path):
    out = tmp_path / "bike.yaml"
    script = [text_reply("steps: [\n"), text_reply(fenced(BOOLEAN))]
    with OpenAITestServer(script=script) as server:
        result = draft_workflow(PROCEDURE, teacher(server), out, DraftConfig(attempts=2))
    assert result.workflow is None and result.attempts == 2
    assert "does not parse" in result.failures[0]
    assert "boolean false" in result.failures[1] and 'quote it ("no")' in result.failures[1]
    assert not out.exists()


def test_the_draft_command_reports_failures_and_exit_codes(tmp_path):
    procedure = tmp_path / "procedure.md"
    procedure.write_text(PROCEDURE)
    runner = CliRunner()
    with OpenAITestServer(script=[text_reply(fenced(BOOLEAN)), text_reply(fenced(GOOD))]) as s:
        args = ["workflow", "draft", "--from", str(procedure), "--out", str(tmp_path / "w.yaml")]
        ok = runner.invoke(app, [*args, "--teacher", f"openai:{TEST_MODEL}@{s.url}"])
    assert ok.exit_code == 0, ok.output
    output = " ".join(ok.output.split())
    assert "answer 1 rejected" in output and "steps.1.optional_preconditions.1.value" in output
    assert "after 2 answer(s), 1 rejected" in output
    assert load_workflow(tmp_path / "w.yaml").id == "bike_rental_damage"
    with OpenAITestServer(script=[text_reply(fenced(SPLIT))]) as s:
        args = ["workflow", "draft", "--from", str(procedure), "--out", str(tmp_path / "x.yaml")]
        bad = runner.invoke(
            app, [*args, "--attempts", "1", "--teacher", f"openai:{TEST_MODEL}@{s.url}"]
        )
    assert bad.exit_code == 1
    assert "pieces of one sentence" in bad.output
    assert "no loadable workflow after 1 answers" in " ".join(bad.output.split())
    assert not (tmp_path / "x.yaml").exists()
