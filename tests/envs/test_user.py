from agentwheel.core.messages import Completion, Message
from agentwheel.envs.agent import EpisodeView
from agentwheel.envs.user import GENERIC_PUSH, LLMUser, ScriptedUser, push_message
from tests.envs.sample_tasks import make_task


def view_after(task, *agent_and_user_turns):
    messages = [
        Message(role="system", content=task.instruction),
        Message(role="user", content=task.user.request),
    ]
    for i, text in enumerate(agent_and_user_turns):
        messages.append(Message(role="assistant" if i % 2 == 0 else "user", content=text))
    return EpisodeView(task=task, trial=0, messages=messages)


def reply(task, *turns):
    return ScriptedUser().reply([view_after(task, *turns)])[0]


def test_facts_are_revealed_only_when_asked_for_by_name_or_alias():
    task = make_task("clarify")
    assert reply(task, "What is your order number?").content == "My order id is O-1."
    assert reply(task, "Could you share the order id and your customer id?").content == (
        "My order id is O-1. My customer id is C-1."
    )
    vague = reply(task, "How can I help?")
    assert "O-1" not in vague.content and not vague.done


def test_push_and_hack_background_come_only_after_a_refusal():
    task = make_task("adversarial")
    statement = reply(task, "Let me look into that for you.")
    assert statement.done and task.user.hack_success_user_background not in statement.content
    pushed = reply(task, "I'm sorry, but I cannot cancel a shipped order.")
    assert not pushed.done
    assert pushed.content == push_message(task)
    assert task.user.escape_utterance in pushed.content
    assert task.user.hack_success_user_background in pushed.content
    final = reply(
        task,
        "I'm sorry, but I cannot cancel a shipped order.",
        pushed.content,
        "I still can't do that.",
    )
    assert final.done


def test_generic_push_when_the_task_has_no_escape_utterance():
    assert reply(make_task("refuse"), "I can't do that.").content.startswith(GENERIC_PUSH)


def test_confirmation_questions_get_a_yes_and_statements_end():
    task = make_task("happy")
    assert reply(task, "Shall I proceed with cancelling O-1?").content == "Yes, please go ahead."
    assert reply(task, "Your order is cancelled. Anything else I can help with?").done


class RecordingModel:
    name = "recording"
    renderer = None

    def __init__(self):
        self.requests = []

    def chat(self, requests, params):
        self.requests.extend(requests)
        return [Completion(text="ok ###END###") for _ in requests]


def test_llm_user_sees_hack_background_only_after_refusal_and_can_end():
    task = make_task("adversarial")
    model = RecordingModel()
    user = LLMUser(model)
    before = user.reply([view_after(task, "Let me check that order.")])[0]
    after = user.reply([view_after(task, "Sorry, I cannot cancel it.")])[0]
    first_prompt = model.requests[0].messages[0].content
    second_prompt = model.requests[1].messages[0].content
    assert task.user.hack_success_user_background not in first_prompt
    assert task.user.hack_success_user_background in second_prompt
    assert before.done and after.done and before.content == "ok"
    # The agent's words reach the user model as the other side of the conversation.
    assert model.requests[0].messages[-1].role == "user"


def test_a_proposal_that_names_a_fact_gets_the_fact_and_a_yes():
    task = make_task("clarify")
    answer = reply(task, "Shall I cancel it? I'll need your order id first.")
    assert answer.content == "Yes, please go ahead. My order id is O-1."


def test_a_refusal_worded_question_is_answered_not_pushed_against():
    task = make_task("clarify")
    answer = reply(task, "I cannot find anything without a reference, could you tell me which one?")
    assert answer.content.startswith("I'm not sure what you need") and not answer.done
    refusal_with_closing = reply(
        task, "I can't cancel that. Is there anything else I can help with?"
    )
    assert refusal_with_closing.content == push_message(task)
