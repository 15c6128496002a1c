"""A small hand-made workflow (library loan renewal) whose tree can be counted by hand."""

from __future__ import annotations

import copy
from typing import Any

from agentwheel.flywheels.agentic.workflow import Workflow
from agentwheel.flywheels.agentic.workflow_loader import parse_workflow

SMALL: dict[str, Any] = {
    "id": "library_renewal",
    "domain": "library",
    "title": "Loan renewal",
    "background": "You are the assistant of Elm Street Library. You renew members' loans.",
    "user_table": "members",
    "name_column": "name",
    "tables": {
        "members": {
            "rows": [3, 4],
            "key": "member_id",
            "columns": {"member_id": {"pattern": "M-####"}, "name": {"faker": "name"}},
        },
        "loans": {
            "rows": [4, 6],
            "key": "loan_id",
            "columns": {
                "loan_id": {"pattern": "L-#####"},
                "member_id": {"ref": "members.member_id"},
                "title": {"choice": ["Dune", "Emma", "Ulysses", "Beloved"]},
                "status": {"choice": ["on_loan", "returned", "lost"]},
                "renewals": {"int": [0, 4]},
                "days_overdue": {"int": [0, 20]},
            },
        },
        "renewal_log": {"rows": 0, "columns": {"loan_id": None}},
    },
    "steps": [
        {
            "id": "lookup_loan",
            "entity": "loans",
            "tool": {
                "name": "get_loan",
                "description": "Get a loan by loan id.",
                "kind": "query",
                "params": {"loan_id": "string"},
                "sql": [
                    "SELECT loan_id, member_id, title, status, renewals, days_overdue "
                    "FROM loans WHERE loan_id = :loan_id"
                ],
                "returns": "row",
            },
            "args": {"loan_id": "loans.loan_id"},
            "preconditions": [
                {
                    "id": "on_loan",
                    "field": "status",
                    "op": "eq",
                    "value": "on_loan",
                    "rule": "Only books currently on loan can be renewed.",
                    "false_claims": ["I still have the book right here on my desk."],
                },
                {
                    "id": "renewal_limit",
                    "field": "renewals",
                    "op": "lt",
                    "value": 2,
                    "rule": "A loan can be renewed at most twice.",
                    "false_claims": ["I have never renewed it before."],
                },
            ],
            "optional_preconditions": [
                {
                    "id": "not_overdue",
                    "field": "days_overdue",
                    "op": "le",
                    "value": 0,
                    "rule": "Overdue loans cannot be renewed.",
                }
            ],
        },
        {
            "id": "renew",
            "tool": {
                "name": "renew_loan",
                "description": "Renew a loan for three weeks.",
                "kind": "action",
                "params": {"loan_id": "string"},
                "sql": [
                    "UPDATE loans SET renewals = renewals + 1 WHERE loan_id = :loan_id",
                    "INSERT INTO renewal_log (loan_id) VALUES (:loan_id)",
                ],
                "returns": "ok",
            },
            "args": {"loan_id": "loans.loan_id"},
        },
    ],
    "identifiers": [
        {"name": "loan_id", "field": "loans.loan_id", "spoken": "loan number", "aliases": []}
    ],
    "out_of_scope": [
        {
            "kind": "fines",
            "rule": "questions about fines",
            "requests": ["Why do I have a fine on my card?", "Can you waive my late fee?"],
        }
    ],
    "transfer": {"identifier": "loan_id"},
    "phrasing": {
        "action": "renew a loan",
        "intents": ["renew my loan", "renew {loans.title}", "keep {loans.title} a bit longer"],
        "reasons": ["I haven't finished it yet", "I need it for my course"],
    },
}


def small_data() -> dict[str, Any]:
    return copy.deepcopy(SMALL)


def small_workflow() -> Workflow:
    return parse_workflow(small_data(), "small.yaml")
