import re
import time
from collections import Counter

import pytest
import yaml

from agentwheel.core.task import BRANCH_KINDS, Task
from agentwheel.envs.runner import EpisodeRunner, EpisodeSpec
from agentwheel.envs.scripted import CautiousPolicy, HackPolicy, OraclePolicy, facts_to_ask_for
from agentwheel.envs.tools import is_tool_error, replay
from agentwheel.envs.user import ScriptedUser
from agentwheel.flywheels.agentic.expand import expand_workflows
from agentwheel.flywheels.agentic.procedural import ProceduralExpander
from agentwheel.flywheels.agentic.tree import BehaviorTree
from tests.flywheels.small_workflow import small_data, small_workflow


@pytest.fixture(scope="module")
def bundled():
    start = time.perf_counter()
    tasks, stats, rejections = expand_workflows(None, seed=0, tasks_per_workflow=32)
    return tasks, stats, rejections, time.perf_counter() - start


def test_small_tree_statistics():
    tree = ProceduralExpander(push_strategies=1).expand(small_workflow(), seed=0)
    stats = tree.stats()
    # root → {clarify, transfer, given}; given → {fail p1 → {refuse, adversarial}, pass p1 →
    # {fail p2 → {refuse, adversarial}, pass p2 = execute}}
    assert stats.depth == 4
    assert stats.nodes == 12
    assert stats.leaves == 7
    assert stats.branching_factor == 2.2
    assert stats.max_branching == 3
    assert stats.leaves_by_kind == {
        "happy": 1,
        "clarify": 1,
        "refuse": 2,
        "transfer": 1,
        "adversarial": 2,
    }
    assert stats.leaves_by_outcome == {"EXECUTE": 1, "CLARIFY": 1, "REFUSE": 4, "TRANSFER": 1}


def test_push_strategies_and_extra_conditions_grow_the_tree():
    wf = small_workflow()
    wider = ProceduralExpander(push_strategies=2).expand(wf, seed=0).stats()
    assert (wider.leaves, wider.leaves_by_kind["adversarial"], wider.depth) == (9, 4, 4)
    deeper = ProceduralExpander(push_strategies=1, extra_conditions=1).expand(wf, seed=0)
    assert deeper.stats().depth == 5
    assert [r.precondition.id for r in deeper.rules] == ["on_loan", "renewal_limit", "not_overdue"]
    assert deeper.rules[-1].optional


def test_raising_extra_conditions_keeps_earlier_rules():
    from agentwheel.flywheels.agentic.workflow_loader import load_workflows

    workflows, _ = load_workflows()
    for wf in workflows:
        previous: set[str] = set()
        for k in range(4):
            rules = ProceduralExpander(extra_conditions=k).chain(wf, seed=3)
            optional = {r.precondition.id for r in rules if r.optional}
            pool = sum(1 for _, _, o in wf.all_preconditions() if o)
            assert previous <= optional and len(optional) == min(k, pool)
            previous = optional


def test_tree_round_trips_through_json():
    tree = ProceduralExpander().expand(small_workflow(), seed=3)
    again = BehaviorTree.model_validate_json(tree.model_dump_json())
    assert again == tree
    assert again.stats() == tree.stats()


def test_refusal_leaves_sit_below_the_checks_that_passed():
    tree = ProceduralExpander(push_strategies=1).expand(small_workflow(), seed=0)
    path = next(p for p in tree.paths() if p[-1].id == "refuse.renewal_limit")
    assert [n.id for n in path] == [
        "root",
        "given",
        "pass.on_loan",
        "fail.renewal_limit",
        "refuse.renewal_limit",
    ]
    assert path[1].steps == ["lookup_loan"]
    assert path[-1].hack_steps == ["renew"]


def test_bundled_expansion_meets_the_targets(bundled):
    tasks, stats, rejections, seconds = bundled
    assert len(tasks) >= 300
    assert len(stats.tasks_by_domain) >= 5
    assert set(stats.tasks_by_kind) == set(BRANCH_KINDS)
    assert rejections == []
    assert seconds < 60
    assert len({t.id for t in tasks}) == len(tasks)
    for s in stats.per_workflow:
        # balanced over kinds: every workflow fills its budget evenly
        assert s.tasks == 32 and set(s.tasks_by_kind.values()) <= {6, 7}, s
        assert s.tree.depth >= 4 and s.tree.leaves >= 11


def test_every_task_validates_and_has_consistent_tools(bundled):
    tasks = bundled[0]
    for task in tasks:
        assert Task.model_validate_json(task.model_dump_json()) == task
        assert 3 <= len(task.tools) <= 5
        assert task.sqlite is not None
        assert task.lineage.round == 0 and task.lineage.operator == "procedural"
        assert task.lineage.branch and task.id.startswith(task.lineage.source_workflow)
        for table in task.sqlite.tables.values():
            assert table.row_tuples() is not None
        rows = sum(len(t.rows) for t in task.sqlite.tables.values())
        assert rows >= 6, "worlds hold distractor rows"


def test_replay_matches_expected_outputs_on_both_backends(bundled):
    for task in bundled[0]:
        normal_state, outputs = replay(task, "normal", "sqlite")
        assert not any(is_tool_error(o) for o in outputs), task.id
        assert outputs == [s.expected_output for s in task.normal_path], task.id
        _, mock_outputs = replay(task, "normal", "mock")
        assert mock_outputs == outputs
        if task.hack_path:
            hack_state, hack_outputs = replay(task, "hack", "sqlite")
            assert not any(is_tool_error(o) for o in hack_outputs), task.id
            assert hack_state != normal_state, task.id
            assert task.hack_action_keys(), task.id


def _hands_over(task):
    """The normal path ends with the hand-off (an out-of-scope request, or a rule that
    says to transfer when it fails)."""
    return bool(task.normal_path) and task.normal_path[-1].tool == task.evaluation.transfer_tool


def _missing(task):
    """The identifier or fact a clarify-branch task leaves out of the request, or None."""
    found = re.search(r"(?:^|\.)clarify\.([a-z0-9_]+)", task.lineage.branch)
    return found.group(1) if found else None


def test_branch_kinds_shape_paths_and_signals(bundled):
    for task in bundled[0]:
        kind = task.branch_kind
        actions = task.action_tools
        normal_actions = [s.tool for s in task.normal_path if s.tool in actions]
        signals = task.evaluation.required_signals
        asks = ["clarification"] if "clarification" in signals else []
        if kind in ("refuse", "adversarial") and _hands_over(task):
            # a failed rule that says to transfer: the hand-off, and nothing else changes
            assert signals == ["transfer", *asks] and normal_actions == [task.normal_path[-1].tool]
            assert task.hack_path and task.user.escape_utterance
        elif kind in ("refuse", "adversarial"):
            assert signals == ["refusal", *asks] and normal_actions == [] and task.hack_path
            assert asks == [] or _missing(task) is not None, task.id
            assert task.user.escape_strategy and task.user.escape_utterance
        elif kind == "transfer":
            assert signals == ["transfer"]
            assert [s.tool for s in task.normal_path if s.tool in actions] == [
                task.evaluation.transfer_tool
            ]
            assert len(task.normal_path[-1].arguments) == 1
            # only a rule's hand-off has a hack path: acting instead of handing over
            assert bool(task.hack_path) == (".handoff." in f".{task.lineage.branch}"), task.id
        else:
            assert normal_actions and not task.hack_path
            assert signals == (["clarification"] if kind == "clarify" else [])
        if kind == "adversarial":
            assert task.user.hack_success_user_background
            assert task.user.escape_utterance not in task.user.request
        else:
            assert task.user.hack_success_user_background == ""


def test_clarify_requests_leave_out_the_identifier(bundled):
    clarify = [t for t in bundled[0] if t.branch_kind == "clarify"]
    assert len(clarify) >= 50
    for task in clarify:
        missing = _missing(task)
        value = task.user.known_facts[missing]
        assert value.lower() not in task.user.request.lower()
        assert missing in facts_to_ask_for(task)


def test_other_requests_state_their_identifiers(bundled):
    for task in bundled[0]:
        if task.branch_kind in ("happy", "refuse", "adversarial") and _missing(task) is None:
            for value in task.user.known_facts.values():
                assert value in task.user.request, task.id


def test_requests_vary(bundled):
    tasks = bundled[0]
    openings = Counter(" ".join(t.user.request.split()[:3]) for t in tasks)
    assert len(openings) > 60
    assert openings.most_common(1)[0][1] < len(tasks) * 0.1
    # the instruction states the policy the tree checks, and only this workflow's
    by_workflow: dict[str, set[str]] = {}
    for task in tasks:
        by_workflow.setdefault(task.lineage.source_workflow, set()).add(task.instruction)
    assert all(len(texts) == 1 for texts in by_workflow.values())


def test_same_seed_same_tasks_and_other_seed_other_data():
    def dump(seed):
        tasks, _, _ = expand_workflows(None, seed=seed, tasks_per_workflow=10)
        return [t.model_dump_json() for t in tasks]

    first, again, other = dump(5), dump(5), dump(6)
    assert first == again
    assert first != other
    worlds = {line.split('"sqlite"')[1] for line in first}
    assert not worlds & {line.split('"sqlite"')[1] for line in other}


def test_scripted_oracle_passes_and_hack_fails(bundled):
    tasks = bundled[0]
    specs = [EpisodeSpec(task=t) for t in tasks]
    oracle = EpisodeRunner(OraclePolicy(), ScriptedUser()).run(specs)
    failed = [t.task_id for t in oracle if not t.passed]
    assert failed == []
    hack = EpisodeRunner(HackPolicy(), ScriptedUser()).run(
        [EpisodeSpec(task=t) for t in tasks if t.hack_path]
    )
    assert hack and not any(t.passed for t in hack)
    assert all(t.reward.hack_action_ran for t in hack)


def test_bundled_tasks_pass_the_validation_gate(bundled):
    from agentwheel.flywheels.agentic.validate import validate_tasks

    tasks = bundled[0]
    report = validate_tasks(tasks)
    assert report.counts == {"kept": len(tasks)}, report.rejected[:3]


def test_deeper_trees_still_replay_and_pass_the_oracle():
    expander = ProceduralExpander(extra_conditions=2, push_strategies=3)
    tasks, stats, rejections = expand_workflows(
        None, seed=11, tasks_per_workflow=15, expander=expander
    )
    assert rejections == []
    assert all(s.tree.depth >= 6 for s in stats.per_workflow)
    policies = [t.instruction.count("\n- ") for t in tasks]
    assert min(policies) >= 6
    results = EpisodeRunner(OraclePolicy(), ScriptedUser()).run(
        [EpisodeSpec(task=t) for t in tasks]
    )
    assert all(t.passed for t in results)


def test_nested_clarify_puts_every_check_below_the_missing_identifier():
    flat = ProceduralExpander(push_strategies=1).expand(small_workflow(), seed=0).stats()
    tree = ProceduralExpander(push_strategies=1, nest_clarify=True).expand(small_workflow(), seed=0)
    stats = tree.stats()
    # the clarify leaf becomes a copy of the checked subtree (5 leaves instead of 1), at
    # the depth of the "identifiers given" one
    assert stats.leaves == flat.leaves + 4
    assert stats.depth == flat.depth
    assert stats.leaves_by_kind == {
        "happy": 1,
        "clarify": 1,
        "refuse": 4,
        "transfer": 1,
        "adversarial": 4,
    }
    from agentwheel.flywheels.agentic.branches import enumerate_branches

    nested = [b for b in enumerate_branches(tree) if b.missing_identifier and b.failed_rule]
    assert len(nested) == 4
    assert {b.kind for b in nested} == {"refuse", "adversarial"}


def test_nested_clarify_tasks_need_a_question_and_a_refusal():

    expander = ProceduralExpander(push_strategies=2, nest_clarify=True)
    tasks, _, rejections = expand_workflows(None, seed=5, tasks_per_workflow=40, expander=expander)
    assert rejections == []
    nested = [
        t
        for t in tasks
        if t.branch_kind in ("refuse", "adversarial") and t.lineage.branch.startswith("clarify.")
    ]
    assert len(nested) >= 40
    for task in nested:
        # a refusal that comes before the left-out identifier is needed is a plain one
        asks = ["clarification"] if facts_to_ask_for(task) else []
        outcome = "transfer" if _hands_over(task) else "refusal"
        assert task.evaluation.required_signals == [outcome, *asks], task.id
    nested = [t for t in nested if "clarification" in t.evaluation.required_signals]
    assert len(nested) >= 30
    specs = [EpisodeSpec(task=t) for t in nested]
    assert all(t.passed for t in EpisodeRunner(OraclePolicy(), ScriptedUser()).run(specs))
    assert not any(t.passed for t in EpisodeRunner(HackPolicy(), ScriptedUser()).run(specs))
    # declining after the lookups, but without asking for the missing identifier, is not enough
    refused = EpisodeRunner(LooksWithoutAsking(), ScriptedUser()).run(specs)
    assert not any(t.passed for t in refused)
    assert all(t.reward.signals_present["refusal"] for t in refused)


class LooksWithoutAsking(CautiousPolicy):
    """Makes the lookups with the identifier the user never gave, then declines."""

    def act(self, views):
        for view in views:
            view.scratch["asked"] = True
        return super().act(views)


def test_malformed_workflows_are_counted_not_raised(tmp_path):
    bad = small_data()
    bad["steps"][0]["preconditions"][0]["op"] = "roughly"
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad))
    tasks, stats, rejections = expand_workflows(
        [small_workflow(), path], seed=0, tasks_per_workflow=10
    )
    assert len(tasks) == 10
    assert stats.workflows == 1 and stats.workflows_rejected == 1
    assert [(r.stage, r.reason, r.field) for r in rejections] == [
        ("load", "invalid_workflow", "steps.0.preconditions.0.op")
    ]
    assert rejections[0].item.endswith("bad.yaml") and "not_in" in rejections[0].detail


def test_unsatisfiable_demands_become_world_rejections():
    # renewals must be < 2 and (new rule) >= 3 at once: no row can satisfy both.
    data = small_data()
    data["steps"][0]["preconditions"].append(
        {"id": "veteran", "field": "renewals", "op": "ge", "value": 3, "rule": "Odd rule."}
    )
    from agentwheel.flywheels.agentic.workflow_loader import parse_workflow

    wf = parse_workflow(data)
    tasks, stats, rejections = expand_workflows([wf], seed=0, tasks_per_workflow=10)
    assert rejections and {r.stage for r in rejections} == {"world"}
    assert rejections[0].reason == "no_world"
    assert "no value of loans.renewals" in rejections[0].detail
    # branches that need only one of the two rules to hold still yield tasks
    assert {t.branch_kind for t in tasks} >= {"transfer", "refuse"}
    assert stats.rejections == len(rejections)
