from agentwheel.envs.tools import MockTools, SqliteTools, replay
from tests.envs.sample_tasks import TOOLS, WORLD, make_task

GET, CANCEL, TRANSFER = TOOLS


def test_sqlite_queries_are_computed_and_actions_change_the_hash():
    tools = SqliteTools(WORLD)
    before = tools.state_hash()
    assert tools.call(GET, {"order_id": "O-2"})["status"] == "shipped"
    assert tools.state_hash() == before
    assert tools.call(CANCEL, {"order_id": "O-1"}) == {"order_id": "O-1", "status": "cancelled"}
    assert tools.state_hash() != before
    assert tools.ledger == ['cancel_order:{"order_id":"O-1"}']


def test_sqlite_arguments_are_bound_not_formatted():
    tools = SqliteTools(WORLD)
    before = tools.state_hash()
    out = tools.call(CANCEL, {"order_id": "x' OR '1'='1"})
    assert out["error"] == "not_found"
    assert tools.state_hash() == before and tools.ledger == []


def test_failed_write_rolls_back_and_is_not_in_the_ledger():
    tools = SqliteTools(WORLD)
    before = tools.state_hash()
    assert tools.call(CANCEL, {"order_id": "O-404"})["error"] == "not_found"
    assert tools.state_hash() == before and tools.ledger == []


def test_each_episode_gets_its_own_database():
    first, second = SqliteTools(WORLD), SqliteTools(WORLD)
    first.call(CANCEL, {"order_id": "O-1"})
    assert second.call(GET, {"order_id": "O-1"})["status"] == "pending"


def test_mock_answers_from_expected_outputs_and_types_off_script_calls():
    task = make_task("happy")
    tools = MockTools(task)
    assert tools.call(GET, {"order_id": "O-1"})["total"] == 40.0
    off = tools.call(GET, {"order_id": "O-3"})
    assert off["error"] == "no_result"


def test_mock_ledger_state_matches_normal_path_replay():
    task = make_task("happy")
    expected, _ = replay(task, "normal", "mock")
    tools = MockTools(task)
    tools.call(CANCEL, {"order_id": "O-1"})
    assert tools.state_hash() == expected
    tools.call(CANCEL, {"order_id": "O-1"})  # a repeated action is a different state
    assert tools.state_hash() != expected


class CountingSimulator:
    def __init__(self):
        self.calls = 0

    def simulate(self, task, tool, arguments):
        self.calls += 1
        return {"simulated": self.calls}


def test_simulated_off_script_answers_are_stable_within_an_episode():
    sim = CountingSimulator()
    tools = MockTools(make_task("happy"), simulator=sim)
    first = tools.call(GET, {"order_id": "O-9"})
    again = tools.call(GET, {"order_id": "O-9"})
    assert first == again == {"simulated": 1} and sim.calls == 1


class FixedModel:
    name = "fixed"
    renderer = None

    def __init__(self, text):
        self.text = text
        self.prompts = []

    def chat(self, requests, params):
        from agentwheel.core.messages import Completion

        self.prompts.extend(r.messages[0].content for r in requests)
        return [Completion(text=self.text) for _ in requests]


def test_llm_tool_simulator_parses_json_and_sees_known_outputs():
    from agentwheel.envs.tool_simulator import LLMToolSimulator

    model = FixedModel('Sure! ```json\n{"order_id": "O-9", "status": "pending"}\n```')
    tools = MockTools(make_task("happy"), simulator=LLMToolSimulator(model))
    assert tools.call(GET, {"order_id": "O-9"}) == {"order_id": "O-9", "status": "pending"}
    assert '"total": 40.0' in model.prompts[0]  # consistent with the task's known facts
    garbage = MockTools(make_task("happy"), simulator=LLMToolSimulator(FixedModel("no idea")))
    assert garbage.call(GET, {"order_id": "O-9"})["error"] == "no_result"


def test_back_ends_agree_that_a_failed_action_changes_nothing():
    task = make_task("happy")
    for tools in (MockTools(task), SqliteTools(WORLD)):
        before = tools.state_hash()
        assert "error" in tools.call(CANCEL, {"order_id": "O-2040"})  # a typo: no such order
        assert tools.state_hash() == before and tools.ledger == []
