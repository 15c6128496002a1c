"""Reading workflow files: YAML → `Workflow`, with every problem named by file and field.

`load_workflow` raises `WorkflowError` naming the file and the field path
(`steps.1.preconditions.0.field`); `load_workflows` turns those into counted rejections.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from agentwheel.core.rejection import Rejection
from agentwheel.core.resources import bundled_data
from agentwheel.core.yaml_text import load_yaml
from agentwheel.flywheels.agentic.task_tools import crowded_out_tools
from agentwheel.flywheels.agentic.workflow import PLACEHOLDER, Workflow
from agentwheel.flywheels.agentic.workflow_checks import check_workflow
from agentwheel.flywheels.agentic.workflow_values import yaml_readings

BUNDLED_WORKFLOWS = bundled_data("workflows")


class WorkflowError(Exception):
    """A workflow file that cannot be used, with the file and the field path to blame.

    `field` and `message` are the first problem; `problems` holds every problem found,
    as (field path, message) pairs, the first included.
    """

    def __init__(
        self,
        file: str,
        field: str,
        message: str,
        problems: Sequence[tuple[str, str]] = (),
    ):
        self.file, self.field, self.message = file, field, message
        self.problems = list(problems) or [(field, message)]
        lines = [f"{file}: {f}: {m}" if f else f"{file}: {m}" for f, m in self.problems]
        super().__init__("\n".join(lines))

    @property
    def detail(self) -> str:
        """Every problem on one line: the first message, then the others with their path."""
        others = [f"{f}: {m}" for f, m in self.problems[1:]]
        return "; ".join([self.message, *others])


def _field_path(data: Any, loc: Iterable[int | str]) -> str:
    """A validation error's location as a path into the YAML, without pydantic's union
    tags (`tuple[int, int]`, `str`, `ColumnGen`): parts that index the data are kept,
    and so is a missing field's name."""
    parts: list[str] = []
    node = data
    for part in loc:
        indexes = (isinstance(node, dict) and part in node) or (
            isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node)
        )
        if indexes:
            node = node[part]  # type: ignore[index]
        elif not isinstance(node, dict) or _is_type_tag(part):
            continue
        else:
            node = None
        parts.append(str(part))
    return ".".join(parts)


def _is_type_tag(part: int | str) -> bool:
    return isinstance(part, str) and (part[:1].isupper() or "[" in part or part in _TYPE_TAGS)


_TYPE_TAGS = {"str", "int", "float", "bool", "list", "dict", "tuple", "function-after"}


def parse_workflow(data: Any, file: str = "<memory>") -> Workflow:
    """Validate a workflow mapping: YAML's readings (booleans, dates) first, then the
    schema, then the cross-field checks. Raises `WorkflowError` with every problem of the
    first stage that has any."""
    if not isinstance(data, dict):
        raise WorkflowError(file, "", "a workflow file must hold a YAML mapping")
    data, problems = yaml_readings(data)
    if problems:
        raise WorkflowError(file, *problems[0], problems)
    try:
        workflow = Workflow.model_validate({**data, "source": file})
    except ValidationError as exc:
        problems = [(_field_path(data, e["loc"]), _schema_message(e)) for e in exc.errors()]
        raise WorkflowError(file, *problems[0], problems) from None
    problems = check_workflow(workflow)
    if problems:
        raise WorkflowError(file, *problems[0], problems)
    return workflow


def _schema_message(error: Any) -> str:
    """pydantic's message, or for a text that YAML read as a mapping, why and the fix."""
    found = error.get("input")
    if error["type"] == "string_type" and isinstance(found, dict):
        return (
            f"YAML read this as a mapping ({found!r}), not as text: a text that starts with "
            '{ is a YAML flow mapping; quote the whole text, e.g. "{request.nights} nights"'
        )
    return str(error["msg"])


def _yaml_message(exc: yaml.YAMLError, text: str) -> str:
    """PyYAML's message, or for an unquoted {placeholder} on the failing line, the fix."""
    mark = getattr(exc, "problem_mark", None)
    line = (
        text.splitlines()[mark.line]
        if mark is not None and mark.line < len(text.splitlines())
        else ""
    )
    if PLACEHOLDER.search(line):
        return (
            f"a {{placeholder}} in unquoted text ({line.strip()!r}): YAML reads {{ as the start "
            'of a mapping; quote each text that holds one, e.g. ["renew {loans.title}", ...] '
            'or - "renew {loans.title}"'
        )
    return f"invalid YAML: {exc}"


def workflow_warnings(wf: Workflow) -> list[tuple[str, str]]:
    """(field path, message) for what loads but is likely not meant: extra tools that no
    task has room for. `validate --workflows` and `synth` print the same ones."""
    return crowded_out_tools(wf)


def load_workflow(path: str | Path) -> Workflow:
    path = Path(path)
    text = path.read_text(encoding="utf-8")
    try:
        data = load_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}" if mark is not None else ""
        raise WorkflowError(str(path), where, _yaml_message(exc, text)) from None
    return parse_workflow(data, str(path))


def workflow_paths(spec: str | Path | None = None) -> list[Path]:
    """A workflow file, a directory of `*.yaml`, or (None) the bundled workflows."""
    path = Path(spec) if spec is not None else BUNDLED_WORKFLOWS
    if path.is_dir():
        return sorted([*path.glob("*.yaml"), *path.glob("*.yml")])
    if path.is_file():
        return [path]
    raise FileNotFoundError(f"no workflow file or directory at {str(path)!r}")


def load_workflows(
    spec: str | Path | Iterable[str | Path] | None = None,
) -> tuple[list[Workflow], list[Rejection]]:
    """Load every workflow it can; each bad file becomes a rejection naming file and field."""
    if spec is None or isinstance(spec, str | Path):
        paths = workflow_paths(spec)
    else:
        paths = [Path(p) for p in spec]
    workflows: list[Workflow] = []
    rejections: list[Rejection] = []
    seen: dict[str, str] = {}
    for path in paths:
        try:
            workflow = load_workflow(path)
        except WorkflowError as exc:
            rejections.append(
                Rejection(
                    stage="load",
                    item=str(path),
                    reason="invalid_workflow",
                    detail=exc.detail,
                    field=exc.field,
                )
            )
            continue
        except OSError as exc:
            rejections.append(
                Rejection(stage="load", item=str(path), reason="unreadable", detail=str(exc))
            )
            continue
        if workflow.id in seen:
            rejections.append(
                Rejection(
                    stage="load",
                    item=str(path),
                    reason="duplicate_id",
                    detail=f"workflow id {workflow.id!r} is also in {seen[workflow.id]}",
                    field="id",
                )
            )
            continue
        seen[workflow.id] = str(path)
        workflows.append(workflow)
    return workflows, rejections
