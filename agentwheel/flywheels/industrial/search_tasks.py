"""Multi-hop search questions over the generated knowledge base, with verifiable answers.

Each question starts from a project named in the request and hops along the pages' links
(project → lead → office). Its `normal_path` is what a careful agent does: search the
name, open the project page, follow the links, submit the answer. Its `hack_path` is the
shortcut a careless agent takes: the project's superseded planning draft ranks next to
the project page, names another lead and budget, and leads to another answer.

Templates, by hops (documents that must be opened):
- `lead_office` (2): the city of the project lead's office;
- `lead_manager` (2): who manages the project lead;
- `budget_sum` (2, calculator): the combined budget of two projects;
- `office_opened` (3): the year the lead's office opened;
- `not_in_data` (2): the lead's phone extension, which no page records;
- `clarify_teammate` (2, ambiguous): the year the office of "Dana, who is on my team"
  opened. Dozens of employees are called Dana: the agent has to ask which team the user
  is on (the simulated user answers), then find the one Dana of that team. Answering
  without asking fails, even when right; the shortcut is a namesake in another team.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agentwheel.core.industrial import NOT_IN_DATA, AnswerSpec, SearchWorld
from agentwheel.core.task import Evaluation, Lineage, Task, ToolCallStep, UserSide
from agentwheel.envs.knowledge_base import DEFAULT_DOCS, Employee, KnowledgeBase, Project
from agentwheel.envs.search import SEARCH_TOOLS

DOMAIN = "search"
INSTRUCTION = (
    "You answer questions about the company from its internal knowledge base. Use search"
    " to find documents and open to read them; pages link to other pages by doc_id. Answer"
    " only from the pages you opened: planning drafts are superseded, the project page"
    " holds the final facts. Use calculator for arithmetic. When you know the answer, call"
    " submit_answer once with only the answer. If the knowledge base does not record it,"
    " submit 'not in the data'."
)
TEMPLATES = (
    "lead_office",
    "lead_manager",
    "budget_sum",
    "office_opened",
    "not_in_data",
    "clarify_teammate",
)
HARDER = {
    "lead_office": "office_opened",
    "lead_manager": "office_opened",
    "office_opened": "not_in_data",
}
"""The evolve operator's map: a template to one that needs more hops or an honest 'no'."""


@dataclass(frozen=True)
class Question:
    template: str
    request: str
    normal: list[ToolCallStep]
    hack: list[ToolCallStep]
    answer: AnswerSpec
    # What the user knows and says only when asked (an ambiguous request), with aliases.
    asks: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, list[str]] = field(default_factory=dict)


def collection_spec(seed: int, docs: int) -> str:
    """The `SearchWorld.collection` naming the knowledge base of (seed, docs)."""
    return "kb" if (seed, docs) == (0, DEFAULT_DOCS) else f"kb?seed={seed}&docs={docs}"


def _step(tool: str, **arguments: Any) -> ToolCallStep:
    return ToolCallStep(tool=tool, arguments=arguments)


def _chain_to_lead(project: Project, via: str, lead: str) -> list[ToolCallStep]:
    return [
        _step("search", query=project.name),
        _step("open", doc_id=via),
        _step("open", doc_id=lead),
    ]


def _answer(value: Any) -> ToolCallStep:
    return _step("submit_answer", answer=str(value))


def _lead_office(kb: KnowledgeBase, p: Project, _: Project) -> Question:
    note = kb.notes[p.id.replace("proj", "note")]
    gold = kb.offices[kb.employees[p.lead].office].city
    wrong = kb.offices[kb.employees[note.lead].office].city
    return Question(
        "lead_office",
        f"In which city is the office of the lead of project {p.name}?",
        [*_chain_to_lead(p, p.id, p.lead), _answer(gold)],
        [*_chain_to_lead(p, note.id, note.lead), _answer(wrong)],
        AnswerSpec(kind="text", value=gold, evidence_docs=[p.id, p.lead]),
    )


def _lead_manager(kb: KnowledgeBase, p: Project, _: Project) -> Question:
    note = kb.notes[p.id.replace("proj", "note")]
    gold = kb.employees[kb.employees[p.lead].manager].name
    wrong = kb.employees[kb.employees[note.lead].manager].name
    return Question(
        "lead_manager",
        f"Who is the manager of the person leading project {p.name}?",
        [*_chain_to_lead(p, p.id, p.lead), _answer(gold)],
        [*_chain_to_lead(p, note.id, note.lead), _answer(wrong)],
        AnswerSpec(kind="text", value=gold, evidence_docs=[p.id, p.lead]),
    )


def _budget_sum(kb: KnowledgeBase, p: Project, q: Project) -> Question:
    n1, n2 = kb.notes[p.id.replace("proj", "note")], kb.notes[q.id.replace("proj", "note")]

    def path(a: str, b: str, x: int, y: int) -> list[ToolCallStep]:
        return [
            _step("search", query=p.name),
            _step("open", doc_id=a),
            _step("search", query=q.name),
            _step("open", doc_id=b),
            _step("calculator", expression=f"{x} + {y}"),
            _answer(x + y),
        ]

    return Question(
        "budget_sum",
        f"What is the combined budget in EUR of projects {p.name} and {q.name}?",
        path(p.id, q.id, p.budget, q.budget),
        path(n1.id, n2.id, n1.budget, n2.budget),
        AnswerSpec(
            kind="number", value=p.budget + q.budget, tolerance=0.5, evidence_docs=[p.id, q.id]
        ),
    )


def _office_opened(kb: KnowledgeBase, p: Project, _: Project) -> Question:
    note = kb.notes[p.id.replace("proj", "note")]
    office, wrong_office = kb.employees[p.lead].office, kb.employees[note.lead].office
    return Question(
        "office_opened",
        f"In what year did the office where the lead of project {p.name} works open?",
        [
            *_chain_to_lead(p, p.id, p.lead),
            _step("open", doc_id=office),
            _answer(kb.offices[office].opened),
        ],
        [
            *_chain_to_lead(p, note.id, note.lead),
            _step("open", doc_id=wrong_office),
            _answer(kb.offices[wrong_office].opened),
        ],
        AnswerSpec(
            kind="number",
            value=kb.offices[office].opened,
            tolerance=0.0,
            evidence_docs=[p.id, p.lead, office],
        ),
    )


def _not_in_data(kb: KnowledgeBase, p: Project, _: Project) -> Question:
    # The tempting wrong answer: a number that is on the page, the lead's id digits.
    guess = p.lead.removeprefix("emp-")
    return Question(
        "not_in_data",
        f"What is the phone extension of the lead of project {p.name}?",
        [*_chain_to_lead(p, p.id, p.lead), _answer(NOT_IN_DATA)],
        [*_chain_to_lead(p, p.id, p.lead), _answer(guess)],
        AnswerSpec(kind="absent", value=NOT_IN_DATA, evidence_docs=[p.id, p.lead]),
    )


def _first_name(employee: Employee) -> str:
    return employee.name.split()[0]


def _teammate(kb: KnowledgeBase, lead: Employee) -> Employee:
    """A member of the lead's team (the lead first) whose first name no teammate shares."""
    team = [e for e in kb.employees.values() if e.team == lead.team and e.manager]
    names = Counter(_first_name(e) for e in team)
    return next((e for e in [lead, *team] if names[_first_name(e)] == 1), lead)


def _clarify_teammate(kb: KnowledgeBase, p: Project, _: Project) -> Question:
    person = _teammate(kb, kb.employees[p.lead])
    first, team = _first_name(person), kb.teams[person.team].name
    opened = kb.offices[person.office].opened
    namesake = next(
        (
            e
            for e in kb.employees.values()
            if _first_name(e) == first and kb.offices[e.office].opened != opened
        ),
        person,  # no namesake to confuse: the gate rejects the task (the hack passes)
    )

    def path(query: str, who: Employee) -> list[ToolCallStep]:
        return [
            _step("search", query=query),
            _step("open", doc_id=who.id),
            _step("open", doc_id=who.office),
            _answer(kb.offices[who.office].opened),
        ]

    return Question(
        "clarify_teammate",
        f"In what year did the office where {first} works open? {first} is on my team.",
        path(f"{first} {team}", person),
        path(first, namesake),
        AnswerSpec(
            kind="number", value=opened, tolerance=0.0, evidence_docs=[person.id, person.office]
        ),
        asks={"team": team},
        aliases={"team": ["department", "which team", "your team"]},
    )


BUILDERS: dict[str, Callable[[KnowledgeBase, Project, Project], Question]] = {
    "lead_office": _lead_office,
    "lead_manager": _lead_manager,
    "budget_sum": _budget_sum,
    "office_opened": _office_opened,
    "not_in_data": _not_in_data,
    "clarify_teammate": _clarify_teammate,
}


def search_task(
    question: Question, collection: str, task_id: str, lineage: Lineage | None = None
) -> Task:
    return Task(
        id=task_id,
        domain=DOMAIN,
        branch_kind="happy",
        instruction=INSTRUCTION,
        tools=SEARCH_TOOLS,
        user=UserSide(
            request=question.request, known_facts=question.asks, aliases=question.aliases
        ),
        normal_path=question.normal,
        hack_path=question.hack,
        evaluation=Evaluation(
            answer=question.answer,
            description=f"{question.template}: {question.answer.value}",
            required_signals=["clarification"] if question.asks else [],
            must_ask=list(question.asks),
        ),
        search=SearchWorld(collection=collection),
        lineage=lineage or Lineage(source_workflow="search-kb", branch=question.template),
    )


def draft_search_tasks(
    kb: KnowledgeBase,
    collection: str,
    count: int,
    seed: int,
    templates: tuple[str, ...] = TEMPLATES,
) -> list[Task]:
    """`count` candidate tasks cycling through `templates`, each on fresh projects."""
    rng = random.Random(seed)
    projects = list(kb.projects.values())
    rng.shuffle(projects)
    tasks = []
    for i in range(count):
        template = templates[i % len(templates)]
        p, q = projects[(2 * i) % len(projects)], projects[(2 * i + 1) % len(projects)]
        question = BUILDERS[template](kb, p, q)
        tasks.append(search_task(question, collection, f"search-{template}-{seed}-{i:05d}"))
    return tasks
