from agentwheel.core.rejection import Rejection
from agentwheel.core.task import Task, ToolSpec, UserSide
from agentwheel.flywheels.agentic.branches import (
    Branch,
    NearDuplicateFilter,
    drop_near_duplicates,
    enumerate_branches,
    jaccard,
    request_tokens,
    sample_tasks,
)
from agentwheel.flywheels.agentic.procedural import ProceduralExpander
from tests.flywheels.small_workflow import small_workflow


def small_branches(push_strategies: int = 1) -> list[Branch]:
    tree = ProceduralExpander(push_strategies=push_strategies).expand(small_workflow(), seed=0)
    return enumerate_branches(tree)


def test_enumerate_branches_flattens_each_path():
    branches = {b.id: b for b in small_branches()}
    assert list(branches) == [
        "clarify.loan_id",
        "transfer.fines",
        "refuse.on_loan",
        "adversarial.on_loan.false_claim",
        "refuse.renewal_limit",
        "adversarial.renewal_limit.false_claim",
        "pass.renewal_limit",
    ]
    nested = branches["adversarial.renewal_limit.false_claim"]
    assert nested.kind == "adversarial" and nested.outcome == "REFUSE"
    assert nested.held_rules == ["on_loan"]
    assert nested.failed_rule == "renewal_limit"
    assert nested.push_strategy == "false_claim"
    assert nested.steps == ["lookup_loan"] and nested.hack_steps == ["renew"]
    assert nested.depth == 4
    happy = branches["pass.renewal_limit"]
    assert (happy.kind, happy.outcome) == ("happy", "EXECUTE")
    assert happy.held_rules == ["on_loan", "renewal_limit"]
    assert happy.steps == ["lookup_loan", "renew"] and happy.hack_steps == []
    clarify = branches["clarify.loan_id"]
    assert clarify.missing_identifier == "loan_id" and clarify.steps == ["lookup_loan", "renew"]
    assert branches["transfer.fines"].steps == ["@transfer"]


def test_request_tokens_mask_ids_amounts_and_emails():
    a = request_tokens("Please cancel order HP-123456, email jo.doe@mail.com, $45.10.")
    b = request_tokens("please CANCEL order HP-999999, email x@y.org, $3,200!")
    assert a == b
    assert "<num>" in a and "<email>" in a and "cancel" in a


def test_jaccard():
    a, b = frozenset("abcd"), frozenset("abce")
    assert jaccard(a, b) == 3 / 5
    assert jaccard(a, a) == 1.0
    assert jaccard(frozenset(), frozenset()) == 1.0


def test_near_duplicate_filter_drops_rewordings_of_ids_only():
    dedup = NearDuplicateFilter(threshold=0.8)
    assert dedup.add("Hi, I'd like to cancel my order HP-100200. Thanks!")
    assert not dedup.add("Hi, I'd like to cancel my order HP-555111. Thanks!")
    assert not dedup.add("hi i'd like to cancel my order hp-1 thanks a")  # 8/9 overlap
    assert dedup.add("Could you stop the lamp I ordered from shipping? My plans changed.")
    assert len(dedup.kept) == 2


def _task(i: int, request: str, kind: str = "happy") -> Task:
    tool = ToolSpec(name="noop", description="", parameters={"type": "object"}, kind="query")
    return Task(
        id=f"t{i}",
        domain="d",
        branch_kind=kind,  # type: ignore[arg-type]
        instruction="",
        tools=[tool],
        user=UserSide(request=request),
    )


def _letters(n: int) -> str:
    """Distinct digit-free words per n (digits are masked by the near-duplicate check)."""
    return " ".join(f"{chr(97 + n % 26)}{chr(97 + n // 26 % 26)}{k}" for k in "pqrstuvw")


def test_drop_near_duplicates_keeps_the_first():
    tasks = [
        _task(0, "Please renew loan L-1 for me, I haven't finished it."),
        _task(1, "Please renew loan L-2 for me, I haven't finished it."),
        _task(2, "Why do I have a fine on my card?"),
    ]
    kept, dropped = drop_near_duplicates(tasks, threshold=0.8)
    assert [t.id for t in kept] == ["t0", "t2"]
    assert [t.id for t in dropped] == ["t1"]


def test_sample_tasks_balances_kinds_and_counts_losses():
    branches = small_branches(push_strategies=2)
    calls: list[tuple[str, int]] = []

    def make(branch: Branch, instance: int):
        calls.append((branch.id, instance))
        if branch.id == "refuse.on_loan":
            return Rejection(
                stage="world", item="w", reason="no_world", context={"branch": branch.id}
            )
        if branch.kind == "transfer" and instance in (1, 2):
            return _task(len(calls), "Why do I have a fine on my card?", branch.kind)
        return _task(len(calls), f"{branch.id} {_letters(len(calls))}", branch.kind)

    tasks, report = sample_tasks(branches, budget=15, make_task=make, seed=0)
    assert len(tasks) == 15
    assert report.by_kind == {
        "happy": 3,
        "clarify": 3,
        "refuse": 3,
        "transfer": 3,
        "adversarial": 3,
    }
    # refuse.on_loan always fails, so refuse tasks all come from refuse.renewal_limit
    refuse_ids = {t.id for t in tasks if t.branch_kind == "refuse"}
    assert len(refuse_ids) == 3
    assert report.rejections and all(
        r.context["branch"] == "refuse.on_loan" for r in report.rejections
    )
    # transfer instances 1 and 2 say the same thing: 2 is dropped and 3 takes its place
    assert report.near_duplicates == 1
    assert [i for b, i in calls if b == "transfer.fines"] == [0, 1, 2, 3]
    assert report.attempts == len(calls) == 15 + len(report.rejections) + report.near_duplicates
    # a repeated branch gets a fresh instance number each time
    happy_calls = [c for c in calls if c[0] == "pass.renewal_limit"]
    assert [i for _, i in happy_calls] == [0, 1, 2]


def test_sample_tasks_gives_exhausted_kinds_budget_to_others():
    branches = small_branches()

    def make(branch: Branch, instance: int):
        if branch.kind == "clarify":
            return Rejection(stage="world", item="w", reason="never", context={"branch": branch.id})
        return _task(instance, f"{branch.id} {_letters(instance)}", branch.kind)

    tasks, report = sample_tasks(branches, budget=10, make_task=make, seed=1, attempts_per_task=1)
    assert len(tasks) == 10
    assert "clarify" not in report.by_kind
    assert sum(report.by_kind.values()) == 10
    assert len(report.rejections) == 10  # clarify kept trying until its attempt limit


def test_sample_tasks_prefers_the_branches_a_grown_tree_added():
    parent = {b.id for b in small_branches(push_strategies=1)}
    grown = enumerate_branches(
        ProceduralExpander(push_strategies=2, nest_clarify=True).expand(small_workflow(), seed=0)
    )

    def make(branch: Branch, instance: int):
        return _task(instance, f"{branch.id} {_letters(instance)}", branch.kind)

    tasks, _ = sample_tasks(
        grown, budget=20, make_task=make, seed=0, prefer=lambda b: b.id not in parent
    )
    by_kind: dict[str, set[str]] = {}
    for task in tasks:
        by_kind.setdefault(task.branch_kind, set()).add(task.user.request.split()[0])
    # refusals and clarifications only from new branches; happy and transfer have none new
    assert by_kind["refuse"] and not by_kind["refuse"] & parent
    assert by_kind["adversarial"] and not by_kind["adversarial"] & parent
    assert by_kind["clarify"] == {"clarify.loan_id.pass.renewal_limit"}
    assert by_kind["happy"] <= parent and by_kind["transfer"] <= parent
