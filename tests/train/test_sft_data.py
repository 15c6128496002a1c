"""SFT warm-start data: loss only on assistant tokens, tool calls included."""

from __future__ import annotations

import pytest

from agentwheel.core.dataset import load_tasks
from agentwheel.core.run_layout import TASKS_FILE
from agentwheel.flywheels.agentic.synth import synth_agentic
from agentwheel.llm.template import ChatTemplateRenderer, tool_chat_template
from agentwheel.llm.tool_calls import format_tool_call
from agentwheel.train.sft_data import oracle_episodes, oracle_sft_data


@pytest.fixture(scope="module")
def renderer():
    from agentwheel.llm.default_model import DefaultModelMissing
    from agentwheel.train.model_factory import smollm2_tokenizer

    try:
        tokenizer = smollm2_tokenizer()
    except DefaultModelMissing as exc:
        pytest.skip(str(exc))
    return ChatTemplateRenderer(tokenizer, tool_chat_template())


@pytest.fixture(scope="module")
def tasks(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth")
    synth_agentic(out, ["agentwheel/data/workflows/retail_order_cancel.yaml"], tasks_per_workflow=4)
    return load_tasks(out / TASKS_FILE).tasks


def _masked_text(renderer, ids, mask, value):
    return renderer.decode([i for i, m in zip(ids, mask, strict=True) if m == value])


def test_loss_mask_covers_exactly_the_assistant_turns(renderer, tasks):
    data = oracle_sft_data(tasks, renderer, max_seq_len=8192)
    assert len(data.sequences) == len(tasks) and data.rejected == {}
    episodes = {t.task_id: t for t in oracle_episodes(tasks)}
    for sequence, task_id in zip(data.sequences, data.task_ids, strict=True):
        trained = _masked_text(renderer, sequence.ids, sequence.loss_mask, 1)
        context = _masked_text(renderer, sequence.ids, sequence.loss_mask, 0)
        messages = episodes[task_id].messages
        expected = "".join(
            renderer.assistant_text(m) + renderer.decode([renderer.end_of_turn_id])
            for m in messages
            if m.role == "assistant"
        )
        # Exactly the assistant turns (content, tool-call blocks, end of turn) are trained.
        assert trained == expected
        calls = [c for m in messages if m.role == "assistant" for c in m.tool_calls]
        assert calls, "the oracle makes tool calls on these tasks"
        for call in calls:
            assert format_tool_call(call.name, call.arguments).strip() in trained
        # System and user turns are context only (those after the last assistant turn
        # carry no loss and are left out of the sequence).
        last = max(i for i, m in enumerate(messages) if m.role == "assistant")
        for m in messages[:last]:
            if m.role in ("user", "system") and m.content:
                assert m.content not in trained
                assert m.content in context


def test_kind_repeats_multiply_the_demos_of_a_branch_kind(renderer, tasks):
    kinds = [t.branch_kind for t in tasks]
    plain = oracle_sft_data(tasks, renderer, max_seq_len=8192)
    weighted = oracle_sft_data(tasks, renderer, max_seq_len=8192, kind_repeats={"happy": 3})
    by_id = {t.id: t.branch_kind for t in tasks}
    happy_plain = sum(by_id[i] == "happy" for i in plain.task_ids)
    happy_weighted = sum(by_id[i] == "happy" for i in weighted.task_ids)
    assert happy_plain == kinds.count("happy") >= 1
    assert happy_weighted == 3 * happy_plain
    # Other kinds keep one demo per task.
    assert len(weighted.task_ids) - happy_weighted == len(plain.task_ids) - happy_plain
