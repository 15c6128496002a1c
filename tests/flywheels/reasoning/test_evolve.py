import pytest

from agentwheel.core.messages import ChatRequest
from agentwheel.flywheels.reasoning.evolve import EvolveConfig, evolve_reasoning
from agentwheel.flywheels.reasoning.generators import exact_check
from agentwheel.flywheels.reasoning.problem import Problem
from agentwheel.flywheels.reasoning.seeds import load_seed_file, write_problems
from agentwheel.flywheels.reasoning.stage_io import StageConfigMismatch
from agentwheel.flywheels.reasoning.synth import SynthConfig, synth_reasoning
from tests.flywheels.reasoning.fakes import CountingArithmeticPolicy, ScriptedChat, last_user


class Interrupted(Exception):
    pass


class StopAfter(CountingArithmeticPolicy):
    """Answers `calls_allowed` chat calls, then dies like a killed process."""

    def __init__(self, calls_allowed: int):
        super().__init__()
        self.calls_allowed = calls_allowed

    def chat(self, requests, params):
        if self.calls >= self.calls_allowed:
            raise Interrupted
        return super().chat(requests, params)


@pytest.fixture
def plan(tmp_path):
    path = tmp_path / "plan.yaml"
    path.write_text(
        "sources:\n"
        "  - generator: chain_sum\n    count: 6\n"
        "    params: {min_terms: 2, max_terms: 2, min_digits: 1, max_digits: 2}\n"
    )
    return path


@pytest.fixture
def seeds_dir(tmp_path, plan):
    out = tmp_path / "seeds"
    synth_reasoning(plan, out, SynthConfig())
    return out


def test_offline_round_makes_harder_exact_problems_in_the_band(seeds_dir, tmp_path):
    out = tmp_path / "round1"
    manifest = evolve_reasoning(seeds_dir, CountingArithmeticPolicy(), None, out)
    rates = manifest["pass_rates"]
    assert rates["parents_evolved"] == 0.5
    assert rates["children"] < rates["parents_evolved"]
    assert rates["by_operator"]["more_steps"]["child_mean"] == 0.25
    assert manifest["counts"]["candidates"] == 12  # 6 failed parents × 2 procedural children
    kept = load_seed_file(out / "problems.jsonl").problems
    children = [p for p in kept if p.lineage.round == 1]
    assert children and all(p.lineage.parent_id and p.lineage.operator != "seed" for p in children)
    assert all(exact_check(p) is None for p in kept)
    assert (
        manifest["exactness"]["procedural_kept_exact"]
        == manifest["exactness"]["procedural_kept"]
        == len(kept)
    )
    assert all(p.meta["answer_status"] == "exact" for p in children)


def test_a_rerun_skips_finished_items(seeds_dir, tmp_path):
    out = tmp_path / "round1"
    with pytest.raises(Interrupted):
        evolve_reasoning(
            seeds_dir, StopAfter(calls_allowed=1), None, out, config=EvolveConfig(batch_size=8)
        )
    journaled = (out / "parent_attempts.jsonl").read_text().splitlines()
    assert len(journaled) == 2  # one call of 8 requests = 2 problems × 4 samples
    policy = CountingArithmeticPolicy()
    manifest = evolve_reasoning(seeds_dir, policy, None, out, config=EvolveConfig(batch_size=8))
    parent_prompts = {last_user(r) for r in policy.requests if "State the final" in last_user(r)}
    assert manifest["resumed_items"]["parent_attempts"] == 2
    assert len(policy.requests) == (6 - 2) * 4 + manifest["counts"]["verified"] * 4
    assert len(parent_prompts) <= 4 + manifest["counts"]["verified"]

    idle = StopAfter(calls_allowed=0)  # a finished run needs no model call at all
    again = evolve_reasoning(seeds_dir, idle, None, out, config=EvolveConfig(batch_size=8))
    assert again["counts"] == manifest["counts"] and again["pass_rates"] == manifest["pass_rates"]


def test_a_rerun_with_other_settings_is_refused(seeds_dir, tmp_path):
    out = tmp_path / "round1"
    evolve_reasoning(seeds_dir, CountingArithmeticPolicy(), None, out, config=EvolveConfig(n=4))
    with pytest.raises(StageConfigMismatch, match=r"config\.n\b"):
        evolve_reasoning(seeds_dir, CountingArithmeticPolicy(), None, out, config=EvolveConfig(n=2))


def _stated_report(tmp_path) -> None:
    problems = [
        Problem(
            id=f"s{i}",
            question=f"Ana has {i} coins and finds 5 more. How many coins does she have?",
            answer=str(i + 5),
            source="t",
        )
        for i in range(1, 4)
    ]
    write_problems(problems, tmp_path / "report" / "problems.jsonl")


def test_a_round_with_a_teacher_keeps_only_consensus_answers(tmp_path):
    _stated_report(tmp_path)

    def teach(request: ChatRequest) -> str:
        prompt = last_user(request)
        if "Put your final answer" in prompt:  # the teacher as a solver
            return "\\boxed{18}" if "doubles" in prompt else "I am not sure."
        if "persona" in prompt:
            answer = prompt.split("CORRECT ANSWER: ")[1].split()[0]
            return f"<problem>A beekeeper has {int(answer) - 5} hives and builds 5 more. How many hives?</problem><answer>{answer}</answer>"
        if "STUDENT'S WRONG ANSWERS" in prompt:
            return "<problem>Ana has 4 coins, finds 5 more, then doubles them. How many coins?</problem><answer>18</answer>"
        return "<problem>nonsense</problem>"  # self-instruct never gets it right

    def solve(request: ChatRequest) -> str:
        prompt = last_user(request)
        if "doubles" in prompt:
            return "\\boxed{18}"
        return "\\boxed{0}"  # disagrees with every persona rewrite

    policy_turn = iter(range(10_000))

    def policy_reply(request: ChatRequest) -> str:
        prompt = last_user(request)
        if "doubles" in prompt:  # solved every other time
            return "\\boxed{18}" if next(policy_turn) % 2 else "\\boxed{9}"
        return "\\boxed{6}" if "1 coins" in prompt else "I do not know"  # solves s1 only

    teacher = ScriptedChat("teacher", teach)
    solver = ScriptedChat("solver", solve)
    config = EvolveConfig(n=2, min_agree=2, teacher_retries=1, procedural_children=0)
    out = tmp_path / "out"
    manifest = evolve_reasoning(
        tmp_path / "report",
        ScriptedChat("policy", policy_reply),
        teacher,
        out,
        [teacher, solver],
        config,
    )
    counts = manifest["counts"]
    assert manifest["solvers"] == ["teacher", "solver"] and manifest["min_agree"] == 2
    assert counts["parents_evolved"] == 2  # s2, s3 (s1 is always solved)
    assert counts["candidates"] == 4  # harder + persona for each; self-instruct was garbage
    assert manifest["rejections"] == {
        "teacher_output": {"wrong_answer_blocks": 2},
        "consistency": {"too few solvers agree": 2},  # the persona rewrites
        "duplicate": {"same question": 1},  # both harder rewrites are the same problem
    }
    [child] = load_seed_file(out / "problems.jsonl").problems
    assert child.answer == "18" and child.meta["answer_status"] == "consensus 2/2"
    assert child.lineage.operator == "harder_rewrite" and child.lineage.parent_id == "s2"
    assert manifest["pass_rates"]["children"] == 0.5


def test_the_teacher_as_its_only_solver_by_default(tmp_path):
    _stated_report(tmp_path)

    def teach(request: ChatRequest) -> str:
        prompt = last_user(request)
        if "Put your final answer" in prompt:  # solving
            return "\\boxed{18}"
        return "<problem>Ana has 4 coins, finds 5 more, then doubles them. How many coins?</problem><answer>18</answer>"

    def policy_reply(request: ChatRequest) -> str:
        return "\\boxed{18}" if "doubles" in last_user(request) else "\\boxed{0}"

    config = EvolveConfig(n=2, procedural_children=0, llm_operators=("harder_rewrite",))
    manifest = evolve_reasoning(
        tmp_path / "report",
        ScriptedChat("policy", policy_reply),
        ScriptedChat("t", teach),
        tmp_path / "out",
        config=config,
    )
    assert manifest["solvers"] == ["t"] and manifest["min_agree"] == 1
    # three parents, one identical child each: the first is kept, the others are duplicates
    assert manifest["counts"]["verified"] == 1
    assert manifest["rejections"]["duplicate"] == {"same question": 2}
    # the policy always solves it: outside the band
    assert manifest["rejections"]["band"] == {"too easy (always solved)": 1}
