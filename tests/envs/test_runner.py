from agentwheel.core.messages import Completion, SamplingParams, ToolCall
from agentwheel.envs.agent import ModelPolicy
from agentwheel.envs.runner import EpisodeRunner, EpisodeSpec
from agentwheel.envs.user import ScriptedUser
from agentwheel.llm.tool_calls import MAX_REPLY_CHARS, format_tool_call, parse_tool_calls
from agentwheel.settings.runner import RunnerConfig
from tests.envs.sample_tasks import make_task

EOT = 3


class CharRenderer:
    """A toy renderer: one id per character, EOT closes an assistant turn."""

    def _encode(self, text):
        return [ord(c) + 10 for c in text]

    def _render(self, messages):
        return "".join(f"[{m.role}]{m.content}" for m in messages)

    def initial_ids(self, messages, tools):
        return self._encode(self._render(messages) + "[assistant]")

    def close_turn_ids(self, completion_ids, finish_reason):
        return [] if completion_ids and completion_ids[-1] == EOT else [EOT]

    def continuation_ids(self, messages):
        return self._encode(self._render(messages) + "[assistant]")

    def decode(self, ids):
        return "".join(chr(i - 10) for i in ids if i != EOT)


class ScriptedTokenModel:
    """A chat model with a renderer that replays fixed texts as generated ids."""

    name = "scripted-tokens"

    def __init__(self, texts, fail_at=None):
        self.texts = texts
        self.fail_at = fail_at
        self.renderer = CharRenderer()
        self.prompts = []

    def chat(self, requests, params):
        out = []
        for request in requests:
            turn = sum(1 for m in request.messages if m.role == "assistant")
            self.prompts.append(list(request.prompt_ids))
            if turn == self.fail_at:
                out.append(Completion(finish_reason="error", error="server said 503"))
                continue
            text = self.texts[min(turn, len(self.texts) - 1)]
            ids = [*self.renderer._encode(text), EOT]
            _prose, calls, errors = parse_tool_calls(text, request.tools)
            out.append(
                Completion(
                    text=text,
                    tool_calls=calls,
                    tool_call_errors=errors,
                    completion_ids=ids,
                    logprobs=[-0.5] * len(ids),
                )
            )
        return out


def run_one(model, kind="happy", **config):
    policy = ModelPolicy(model, SamplingParams())
    return EpisodeRunner(policy, ScriptedUser(), RunnerConfig(**config)).run(
        [EpisodeSpec(make_task(kind))]
    )[0]


def test_loss_mask_is_one_exactly_on_generated_tokens():
    texts = [
        format_tool_call("get_order", {"order_id": "O-1"}),
        format_tool_call("cancel_order", {"order_id": "O-1"}),
        "Your order O-1 is cancelled.",
    ]
    model = ScriptedTokenModel(texts)
    trajectory = run_one(model)
    assert trajectory.passed
    tokens = trajectory.tokens
    generated = [i for i, m in zip(tokens.ids, tokens.loss_mask, strict=True) if m == 1]
    expected = [i for t in texts for i in [*model.renderer._encode(t), EOT]]
    assert generated == expected
    assert all(lp == -0.5 for lp, m in zip(tokens.logprobs, tokens.loss_mask, strict=True) if m)
    assert all(lp == 0.0 for lp, m in zip(tokens.logprobs, tokens.loss_mask, strict=True) if not m)
    # Token-in, token-out: every prompt extends the previous prompt plus what was generated.
    for earlier, later in zip(model.prompts, model.prompts[1:], strict=False):
        assert later[: len(earlier)] == earlier
    assert tokens.ids[: len(model.prompts[-1])] == model.prompts[-1]


def test_garbage_tool_calls_are_counted_and_returned_to_the_agent():
    garbage = '<tool_call>{"name": "get_order", "arguments": {"order_id": </tool_call><tool_call>{"name": "rm"}</tool_call>'
    trajectory = run_one(ScriptedTokenModel([garbage]), max_agent_turns=3)
    assert trajectory.termination == "turn_limit"
    assert trajectory.counts.invalid_tool_calls == {"malformed_json": 3, "unknown_tool": 3}
    errors = [m.content for m in trajectory.messages if m.role == "tool"]
    assert len(errors) == 6 and all(e.startswith('{"error": "invalid_tool_call"') for e in errors)
    assert not trajectory.passed


def test_model_failure_ends_the_episode_as_a_counted_failure():
    texts = [format_tool_call("get_order", {"order_id": "O-1"})]
    trajectory = run_one(ScriptedTokenModel(texts, fail_at=1))
    assert trajectory.termination == "model_error" and trajectory.error == "server said 503"
    assert not trajectory.passed


def test_token_limit_cuts_long_episodes():
    texts = ["What is your order id?"]
    trajectory = run_one(ScriptedTokenModel(texts), kind="clarify", max_episode_tokens=50)
    assert trajectory.termination == "token_limit"


def test_many_episodes_are_batched_into_one_model_call():
    class CountingOracle:
        name = "counting"

        def __init__(self):
            from agentwheel.envs.scripted import OraclePolicy

            self.inner = OraclePolicy()
            self.batch_sizes = []

        def act(self, views):
            self.batch_sizes.append(len(views))
            return self.inner.act(views)

    policy = CountingOracle()
    specs = [EpisodeSpec(make_task("happy"), trial=i) for i in range(10)]
    trajectories = EpisodeRunner(policy, ScriptedUser(), RunnerConfig(batch_size=4)).run(specs)
    assert len(trajectories) == 10 and all(t.passed for t in trajectories)
    assert policy.batch_sizes[:3] == [4, 4, 2]


class FixedTurns:
    """Plays fixed completions, one per turn, without checking them (as a sloppy model might)."""

    name = "fixed"

    def __init__(self, turns):
        self.turns = turns

    def act(self, views):
        made = [sum(1 for m in v.messages if m.role == "assistant") for v in views]
        return [self.turns[min(n, len(self.turns) - 1)] for n in made]


def run_plain(turns, kind="happy"):
    return EpisodeRunner(FixedTurns(turns), ScriptedUser()).run([EpisodeSpec(make_task(kind))])[0]


def test_a_30_mb_reply_is_stored_cut_and_counted():
    huge = Completion(text="la " * 10_000_000)
    trajectory = run_plain([huge])
    said = [m.content for m in trajectory.messages if m.role == "assistant"]
    assert said and max(len(t) for t in said) <= MAX_REPLY_CHARS
    assert trajectory.counts.replies_cut >= 1
    assert len(trajectory.model_dump_json()) < 20 * MAX_REPLY_CHARS


def test_calls_a_model_did_not_check_are_checked_before_they_run():
    unchecked = [
        ToolCall(id="a", name="drop_tables", arguments={}),
        ToolCall(id="b", name="cancel_order", arguments={"order_id": 2**64}),
        ToolCall(id="c", name="cancel_order", arguments={"order_id": "O-1", "force": True}),
    ]
    turns = [Completion(tool_calls=unchecked), Completion(text="Done.")]
    trajectory = run_plain(turns)
    assert trajectory.counts.tool_calls == 0
    assert trajectory.counts.invalid_tool_calls == {"unknown_tool": 1, "bad_arguments": 2}
    assert trajectory.reward.final_state != trajectory.reward.expected_state


def test_lone_surrogates_in_a_reply_do_not_break_writing_the_trace():
    text = 'Hi \ud800 <tool_call>{"name": "get_order", "arguments": {"order_id": "\\ud800"}}'
    _, calls, errors = parse_tool_calls(text, make_task("happy").tools)
    turns = [Completion(text=text, tool_calls=calls, tool_call_errors=errors), Completion()]
    trajectory = run_plain(turns)
    trajectory.model_dump_json().encode("utf-8")
    assert trajectory.counts.invalid_tool_calls == {"bad_arguments": 1}
    assert trajectory.messages[2].content == "Hi \ufffd"
