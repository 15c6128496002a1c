"""The LLM expander: a teacher model turns workflows into behavior trees, policies and tasks.

Three stages, modelled on the paper's synthesis prompts (the templates are in
`flywheels/agentic/prompts/`):

- `tree`   — workflow → task description, 3–5 tools and a JSON behavior tree (one request
  per workflow), turned into the `BehaviorTree` the procedural expander builds too;
- `policy` — workflow + tree → the agent's policy, rules that state conditions, never
  procedures (one request per workflow);
- `task`   — one root-to-leaf `Branch` → a test case: request, the user's facts, escape
  strategy, normal and hack paths with expected outputs, evaluation (one request per
  leaf). The answer becomes a mock back-end `Task` (`sqlite=None`).

Every answer is parsed and validated; an unusable answer goes back to the teacher with
the problems in a follow-up turn, at most `max_repairs` times, then the item is a
counted core `Rejection` with its stage and reason. Produced tasks then pass the
validation gate (`validate_tasks`), whose rejections are counted too.

Modules: `schemas` (what the teacher answers), `extract` (JSON out of a reply),
`prompts`, `checks` (problems the teacher can fix), `build` (answer → Task), `records`
and `state` (the run's files and resuming), `scheduler` (the concurrent pipeline),
`expander` (`LLMExpander`, `expand_with_llm`).
"""

from agentwheel.core.run_layout import MANIFEST_FILE, REJECTIONS_FILE, TASKS_FILE
from agentwheel.flywheels.agentic.llm_expander.build import OPERATOR, build_task, task_id
from agentwheel.flywheels.agentic.llm_expander.checks import (
    case_problems,
    policy_problems,
    request_problems,
)
from agentwheel.flywheels.agentic.llm_expander.config import LLMExpanderConfig
from agentwheel.flywheels.agentic.llm_expander.expander import LLMExpander, expand_with_llm
from agentwheel.flywheels.agentic.llm_expander.extract import (
    AnswerError,
    extract_json_object,
    parse_answer,
)
from agentwheel.flywheels.agentic.llm_expander.prompts import render_workflow
from agentwheel.flywheels.agentic.llm_expander.records import (
    POLICIES_FILE,
    TREES_FILE,
    Manifest,
    StageCounts,
    is_final,
)
from agentwheel.flywheels.agentic.llm_expander.schemas import (
    CaseAnswer,
    PolicyAnswer,
    TreeAnswer,
    TreeNodeAnswer,
    tree_branches,
)

__all__ = [
    "MANIFEST_FILE",
    "OPERATOR",
    "POLICIES_FILE",
    "REJECTIONS_FILE",
    "TASKS_FILE",
    "TREES_FILE",
    "AnswerError",
    "CaseAnswer",
    "LLMExpander",
    "LLMExpanderConfig",
    "Manifest",
    "PolicyAnswer",
    "StageCounts",
    "TreeAnswer",
    "TreeNodeAnswer",
    "build_task",
    "case_problems",
    "expand_with_llm",
    "extract_json_object",
    "is_final",
    "parse_answer",
    "policy_problems",
    "render_workflow",
    "request_problems",
    "task_id",
    "tree_branches",
]
