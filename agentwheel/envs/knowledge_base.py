"""A generated company knowledge base: linked pages with facts a question can chain.

Offices, teams, employees and projects, each a page whose lines name the linked pages by
title and id (`Lead: Dana Kim (emp-00123)`), so a question hops from page to page:
project → its lead → the lead's office. Every project also has a superseded planning
note that names a different lead and budget: the distractor a careless agent answers
from. The rest of the collection is employee pages, so retrieval has to rank.

Deterministic from `(seed, docs)` and fast (10,000 documents in well under a second), so
the collection is regenerated where it is needed instead of shipped as a file.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_FIRST = _words(
    "Ada Alan Alice Amir Ana Anders Anika Arjun Aylin Bea Bruno Carla Chen Chiara Dana Daniel "
    "Dario Elena Elif Emil Erik Esme Farah Felix Gita Hana Hugo Ida Ines Ivan Jae Jonas Julia "
    "Kai Karin Kenji Lara Lena Leo Lina Luca Maya Mei Mila Nadia Nina Noah Omar Oskar Pablo "
    "Paula Priya Rafael Ravi Rosa Ruth Sami Sara Sofia Tariq Teo Tomas Uma Vera Viktor Wen "
    "Yara Yusuf Zara Zoe Aiko Bilal Cyrus Dmitri Edith Fatima Gustav Hiro Ilse Jonah Kofi "
    "Lucia Marta Nils Olga Pedro Quinn Rhea"
)
_LAST = _words(
    "Abara Bauer Castro Dahl Eriksen Ferreira Garcia Haas Ito Jensen Kim Larsen Moreau Novak "
    "Okafor Petrov Quist Rossi Sato Tanaka Ueda Varga Weber Xu Yilmaz Zeller Andersen Bianchi "
    "Costa Duarte Engel Fischer Gomez Horvat Ivanova Jung Kowalski Lindqvist Meyer Nakamura "
    "Olsen Park Reyes Schmidt Torres Vogel Wagner Yamada Zhou Adler Brandt Cruz Diaz Evans "
    "Fuchs Greco Hoffmann Iqbal Jovanovic Keller Lopez Marino Nielsen Ortiz Popescu Ramos "
    "Silva Thomsen Vidal Wolf Young Zimmer Alvarez Berg Conti Dubois Falk Graf Hansen Ibrahim "
    "Jaeger Koch Lehmann Mori Nowak Otto Pohl Richter"
)
_CITIES = _words(
    "Lisbon Oslo Austin Nairobi Osaka Lyon Denver Krakow Porto Seoul Dublin Quito Leeds Perth "
    "Tallinn Accra Bergen Cork Gdansk Hanoi Izmir Kyoto Lagos Malmo"
)
_ADJECTIVES = _words(
    "Amber Azure Bold Bright Cedar Cobalt Coral Crimson Dawn Ember Emerald Falcon Frost "
    "Golden Granite Harbor Indigo Iron Ivory Jade Lunar Maple Marble Misty Nimble Northern "
    "Onyx Pacific Quiet Rapid Ruby Saffron Silver Solar Swift Tidal Topaz Velvet Violet "
    "Winter Zephyr Arctic Copper Desert Echo Gentle Hidden Keen Lucky"
)
_NOUNS = _words(
    "Anchor Arrow Badger Beacon Bison Bridge Canyon Comet Compass Condor Crane Delta Dolphin "
    "Eagle Ember Fjord Forge Fox Glacier Harbor Hawk Heron Horizon Lantern Lynx Meadow Meteor "
    "Orchid Otter Owl Panther Pebble Pine Quartz Raven Reef Ridge River Sparrow Summit "
    "Thunder Tiger Tundra Valley Voyager Willow Wolf Yak Zenith Atlas"
)
_AREAS = _words(
    "Platform Payments Search Data Mobile Security Growth Cloud Support Logistics Hardware Research"
)
_FUNCTIONS = _words(
    "Reliability Tooling Analytics Infrastructure Design Operations Quality Insights Delivery "
    "Experience"
)
_ROLES = [
    "Analyst",
    "Senior Analyst",
    "Engineer",
    "Senior Engineer",
    "Staff Engineer",
    "Designer",
    "Product Manager",
    "Data Scientist",
    "Researcher",
    "Program Manager",
]
_STATUSES = ("active", "active", "active", "paused", "completed")
OFFICES = len(_CITIES)
TEAMS = 120
DEFAULT_DOCS = 10_000


@dataclass(frozen=True)
class Office:
    id: str
    city: str
    opened: int
    headcount: int


@dataclass(frozen=True)
class Team:
    id: str
    name: str
    office: str  # office id
    head: str = ""  # employee id, set once employees exist


@dataclass(frozen=True)
class Employee:
    id: str
    name: str
    role: str
    team: str
    office: str
    manager: str  # employee id ("" for a team head)
    joined: int


@dataclass(frozen=True)
class Project:
    id: str
    name: str
    lead: str
    team: str
    budget: int
    launched: int
    status: str


@dataclass(frozen=True)
class PlanningNote:
    """A superseded draft about a project: a different lead and budget (the distractor)."""

    id: str
    project: str
    lead: str
    budget: int
    year: int


@dataclass
class KnowledgeBase:
    offices: dict[str, Office] = field(default_factory=dict)
    teams: dict[str, Team] = field(default_factory=dict)
    employees: dict[str, Employee] = field(default_factory=dict)
    projects: dict[str, Project] = field(default_factory=dict)
    notes: dict[str, PlanningNote] = field(default_factory=dict)
    documents: list[dict[str, str]] = field(default_factory=list)


def generate_knowledge_base(seed: int = 0, docs: int = DEFAULT_DOCS) -> KnowledgeBase:
    """A knowledge base of exactly `docs` documents (at least 1,000), deterministic from
    `seed`: offices, teams, projects and one planning note each, the rest employees."""
    if docs < 1000:
        raise ValueError(f"a generated knowledge base has at least 1000 documents, got {docs}")
    rng = random.Random(seed)
    kb = KnowledgeBase()
    n_projects = min(len(_ADJECTIVES) * len(_NOUNS), docs * 3 // 20)
    n_employees = docs - OFFICES - TEAMS - 2 * n_projects
    if n_employees > len(_FIRST) * len(_LAST):
        raise ValueError(f"at most {_max_docs()} generated documents, got {docs}")
    _add_offices(kb, rng)
    _add_teams(kb, rng)
    _add_employees(kb, rng, n_employees)
    _add_projects(kb, rng, n_projects)
    kb.documents = _documents(kb)
    return kb


def _max_docs() -> int:
    return len(_FIRST) * len(_LAST) + OFFICES + TEAMS + 2 * len(_ADJECTIVES) * len(_NOUNS)


def _add_offices(kb: KnowledgeBase, rng: random.Random) -> None:
    for i, city in enumerate(_CITIES):
        office = Office(f"office-{i:02d}", city, rng.randint(1995, 2022), rng.randint(40, 900))
        kb.offices[office.id] = office


def _add_teams(kb: KnowledgeBase, rng: random.Random) -> None:
    names = [f"{a} {f}" for a in _AREAS for f in _FUNCTIONS]
    rng.shuffle(names)
    offices = list(kb.offices)
    for i, name in enumerate(names[:TEAMS]):
        kb.teams[f"team-{i:03d}"] = Team(f"team-{i:03d}", name, rng.choice(offices))


def _add_employees(kb: KnowledgeBase, rng: random.Random, count: int) -> None:
    names = rng.sample([f"{f} {last}" for f in _FIRST for last in _LAST], count)
    team_ids = list(kb.teams)
    heads: dict[str, str] = {}
    for i, name in enumerate(names):
        team = kb.teams[team_ids[i % len(team_ids)]]
        emp_id = f"emp-{i:05d}"
        is_head = team.id not in heads
        office = team.office if is_head or rng.random() < 0.7 else rng.choice(list(kb.offices))
        kb.employees[emp_id] = Employee(
            id=emp_id,
            name=name,
            role="Head of " + team.name if is_head else rng.choice(_ROLES),
            team=team.id,
            office=office,
            manager="" if is_head else heads[team.id],
            joined=rng.randint(2005, 2024),
        )
        if is_head:
            heads[team.id] = emp_id
            kb.teams[team.id] = Team(team.id, team.name, team.office, emp_id)


def _add_projects(kb: KnowledgeBase, rng: random.Random, count: int) -> None:
    names = rng.sample([f"{a} {n}" for a in _ADJECTIVES for n in _NOUNS if a != n], count)
    staff = [e for e in kb.employees.values() if e.manager]
    for i, name in enumerate(names):
        lead, other = rng.sample(staff, 2)
        project = Project(
            id=f"proj-{i:04d}",
            name=name,
            lead=lead.id,
            team=lead.team,
            budget=rng.randint(40, 2400) * 1000,
            launched=rng.randint(2012, 2025),
            status=rng.choice(_STATUSES),
        )
        kb.projects[project.id] = project
        draft_budget = project.budget + rng.choice((-1, 1)) * rng.randint(5, 300) * 1000
        kb.notes[f"note-{i:04d}"] = PlanningNote(
            id=f"note-{i:04d}",
            project=project.id,
            lead=other.id,
            budget=max(10_000, draft_budget),
            year=project.launched - 1,
        )


def _ref(title: str, doc_id: str) -> str:
    return f"{title} ({doc_id})"


def _documents(kb: KnowledgeBase) -> list[dict[str, str]]:
    emp, team, office = kb.employees, kb.teams, kb.offices
    documents = []
    for o in kb.offices.values():
        text = (
            f"The {o.city} office ({o.id}) opened in {o.opened} and has {o.headcount} staff.\n"
            f"City: {o.city}\nOpened: {o.opened}\nHeadcount: {o.headcount}"
        )
        documents.append({"doc_id": o.id, "title": f"{o.city} office", "text": text})
    for t in kb.teams.values():
        text = (
            f"The {t.name} team ({t.id}).\nHead: {_ref(emp[t.head].name, t.head)}\n"
            f"Office: {_ref(office[t.office].city, t.office)}"
        )
        documents.append({"doc_id": t.id, "title": f"{t.name} team", "text": text})
    for e in kb.employees.values():
        manager = _ref(emp[e.manager].name, e.manager) if e.manager else "none (team head)"
        text = (
            f"{e.name} ({e.id}) works as {e.role}.\n"
            f"Team: {_ref(team[e.team].name, e.team)}\n"
            f"Office: {_ref(office[e.office].city, e.office)}\n"
            f"Manager: {manager}\nJoined: {e.joined}"
        )
        documents.append({"doc_id": e.id, "title": e.name, "text": text})
    for p in kb.projects.values():
        text = (
            f"Project {p.name} ({p.id}) is {p.status}.\n"
            f"Lead: {_ref(emp[p.lead].name, p.lead)}\nTeam: {_ref(team[p.team].name, p.team)}\n"
            f"Budget: {p.budget} EUR\nLaunched: {p.launched}\nStatus: {p.status}"
        )
        documents.append({"doc_id": p.id, "title": f"Project {p.name}", "text": text})
    for n in kb.notes.values():
        p = kb.projects[n.project]
        text = (
            f"Superseded planning draft from {n.year} for project {p.name}. The draft proposed "
            f"{_ref(emp[n.lead].name, n.lead)} as lead with a budget of {n.budget} EUR. "
            f"Final staffing and budget are on the project page ({p.id})."
        )
        documents.append({"doc_id": n.id, "title": f"{p.name} planning draft", "text": text})
    return documents
