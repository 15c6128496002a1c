"""BFCL v4 multi-turn with the official `bfcl-eval` package, against a served model.

How bfcl-eval is driven (read from its source, version pinned in `BFCL_REQUIREMENT`):
- `bfcl generate --model <handler> --skip-server-setup --local-model-path <dir>` uses the
  handler's own prompt formatting and sends the prompt text to `/v1/completions` at
  `$REMOTE_OPENAI_BASE_URL`, asking for the model named `<dir>` (the local-model handler
  sends its model path as the model name; `vllm serve <dir>` serves that name too). The
  tokenizer (token counting only) and config load from `<dir>` with `local_files_only`.
- Files live under `$BFCL_PROJECT_ROOT` (here the run directory): `result/` (generations,
  appended as entries finish; a rerun skips the ids already there, so runs resume),
  `score/` (per-category score files and the official CSV tables).
- A subset is `test_case_ids_to_generate.json` in the project root plus `--run-ids`; the
  evaluation of a subset needs `--partial-eval`.

The handler: `Qwen/Qwen3-*-FC` entries use `QwenFCHandler`, whose prompt is ChatML with a
`# Tools` system block listing the functions in `<tools></tools>`, tool calls as
`<tool_call>\\n{"name": …, "arguments": …}\\n</tool_call>` and results in `<tool_response>`
blocks in a user turn: the layout of agentwheel's tool template
(`agentwheel/llm/templates/chatml_tools.jinja`) and the text our tool-call parser reads.
The handler entry only picks that formatting; its display name (e.g. "Qwen3-8B (FC)") is
what the official CSV calls the model, whatever is served.
"""

from __future__ import annotations

import csv
import json
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from agentwheel.core.atomic import write_text_atomic
from agentwheel.eval.public.endpoint import PLACEHOLDER_API_KEY, require_model
from agentwheel.eval.public.tool_env import ToolEnv, ensure_tool_env
from agentwheel.eval.public.tool_run import run_tool

BFCL_REQUIREMENT = "bfcl-eval==2026.3.23"
# bfcl-eval imports qwen_agent, which imports soundfile without declaring it.
BFCL_EXTRA_REQUIREMENTS = ("soundfile",)
BFCL_COMMAND = "bfcl"
VERSION_PREFIX = "BFCL_v4"
MULTI_TURN_CATEGORIES = (
    "multi_turn_base",
    "multi_turn_miss_func",
    "multi_turn_miss_param",
    "multi_turn_long_context",
)
DEFAULT_HANDLER = "Qwen/Qwen3-8B-FC"
IDS_FILE = "test_case_ids_to_generate.json"
MULTI_TURN_CSV = "data_multi_turn.csv"
REPORT_FILE = "bfcl.json"
LOG_FILE = "bfcl.log"
# The CSV's columns for each category, in `MULTI_TURN_CATEGORIES` order.
CSV_COLUMNS = ("Base", "Miss Func", "Miss Param", "Long Context")
CSV_OVERALL = "Multi Turn Overall Acc"


class BfclDataMissing(RuntimeError):
    """The installed bfcl-eval has no data file for a category."""


class BfclRun(BaseModel):
    """What one `agentwheel bench bfcl` run asks of bfcl-eval."""

    base_url: str = Field(description="The OpenAI-compatible server, ending in /v1.")
    model_dir: Path = Field(
        description="Local model directory: tokenizer and config for the handler, and the "
        "model name the server must serve."
    )
    handler: str = Field(DEFAULT_HANDLER, description="bfcl-eval model registry entry.")
    categories: tuple[str, ...] = MULTI_TURN_CATEGORIES
    limit: int | None = Field(None, description="First N entries per category; None: all.")
    temperature: float = 0.001  # bfcl-eval's own default
    num_threads: int = 1
    api_key: str = PLACEHOLDER_API_KEY

    @property
    def model_name(self) -> str:
        return str(self.model_dir)


class CategoryScore(BaseModel):
    accuracy: float
    correct: int
    total: int


class BfclReport(BaseModel):
    """`bfcl.json`: the official scores of one run and how they were obtained."""

    requirement: str
    handler: str
    model_name: str
    base_url: str
    limit: int | None
    categories: dict[str, CategoryScore]
    multi_turn_overall: float | None = Field(
        description="The CSV's 'Multi Turn Overall Acc' (unweighted mean of the four)."
    )
    score_table: Path
    wall_s: dict[str, float]


def tool_env(path: Path) -> ToolEnv:
    return ToolEnv(
        path=path, requirements=(BFCL_REQUIREMENT, *BFCL_EXTRA_REQUIREMENTS), command=BFCL_COMMAND
    )


def package_data_dir(env: ToolEnv) -> Path:
    """bfcl-eval's bundled data directory inside its virtualenv (found without importing
    the package: importing its config creates result folders)."""
    probe = (
        "import importlib.util as u; print(u.find_spec('bfcl_eval').submodule_search_locations[0])"
    )
    done = subprocess.run([str(env.python), "-c", probe], capture_output=True, text=True)
    if done.returncode != 0:
        raise BfclDataMissing(f"bfcl_eval is not importable in {env.path}: {done.stderr.strip()}")
    return Path(done.stdout.strip()) / "data"


def subset_ids(data_dir: Path, categories: Sequence[str], limit: int) -> dict[str, list[str]]:
    """The first `limit` entry ids of each category, in the data file's order."""
    chosen: dict[str, list[str]] = {}
    for category in categories:
        path = data_dir / f"{VERSION_PREFIX}_{category}.json"
        if not path.is_file():
            raise BfclDataMissing(f"no data for {category}: {path} is missing")
        ids: list[str] = []
        with open(path, encoding="utf-8") as lines:
            for line in lines:
                if line.strip():
                    ids.append(json.loads(line)["id"])
                if len(ids) == limit:
                    break
        if not ids:
            raise BfclDataMissing(f"no entries for {category} in {path}")
        chosen[category] = ids
    return chosen


def generate_command(bfcl: Path, run: BfclRun) -> list[str]:
    command = [
        str(bfcl), "generate",
        "--model", run.handler,
        "--test-category", ",".join(run.categories),
        "--temperature", str(run.temperature),
        "--skip-server-setup",
        "--local-model-path", run.model_name,
        "--num-threads", str(run.num_threads),
    ]  # fmt: skip
    if run.limit is not None:
        command.append("--run-ids")
    return command


def evaluate_command(bfcl: Path, run: BfclRun) -> list[str]:
    command = [
        str(bfcl), "evaluate",
        "--model", run.handler,
        "--test-category", ",".join(run.categories),
    ]  # fmt: skip
    if run.limit is not None:
        command.append("--partial-eval")
    return command


def tool_environment(run: BfclRun, project_root: Path) -> dict[str, str]:
    """Environment variables for both bfcl commands: offline, files in the run directory,
    the served model as the remote endpoint."""
    return {
        "BFCL_PROJECT_ROOT": str(project_root.resolve()),
        "REMOTE_OPENAI_BASE_URL": run.base_url,
        "REMOTE_OPENAI_API_KEY": run.api_key,
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
        "PYTHONUNBUFFERED": "1",
    }


def read_category_scores(
    score_dir: Path, handler: str, categories: Sequence[str]
) -> dict[str, CategoryScore]:
    """Each category's header line of its official score file (`…_score.json`, JSON lines
    whose first line is `{"accuracy", "correct_count", "total_count"}`)."""
    model_dir = score_dir / handler.replace("/", "_")
    scores: dict[str, CategoryScore] = {}
    for category in categories:
        found = sorted(model_dir.rglob(f"{VERSION_PREFIX}_{category}_score.json"))
        if not found:
            continue
        with open(found[0], encoding="utf-8") as lines:
            header = json.loads(lines.readline())
        scores[category] = CategoryScore(
            accuracy=float(header["accuracy"]),
            correct=int(header["correct_count"]),
            total=int(header["total_count"]),
        )
    return scores


def read_multi_turn_table(score_dir: Path) -> list[dict[str, str]]:
    """The rows of the official `data_multi_turn.csv` table."""
    with open(score_dir / MULTI_TURN_CSV, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def percent(cell: str) -> float | None:
    """'12.50%' → 0.125; 'N/A' → None."""
    cell = cell.strip()
    if not cell.endswith("%"):
        return None
    return float(cell.removesuffix("%")) / 100


def run_bfcl(
    run: BfclRun,
    out: Path,
    env: ToolEnv,
    log: Callable[[str], None] = lambda _: None,
    on_line: Callable[[str], None] = lambda _: None,
) -> BfclReport:
    """Generate with the served model, evaluate with bfcl-eval, write `bfcl.json` in `out`."""
    out.mkdir(parents=True, exist_ok=True)
    bfcl = ensure_tool_env(env, log)
    require_model(run.base_url, run.model_name, run.api_key)
    ids_path = out / IDS_FILE
    if run.limit is not None:
        ids = subset_ids(package_data_dir(env), run.categories, run.limit)
        write_text_atomic(ids_path, json.dumps(ids, indent=2) + "\n")
    else:
        ids_path.unlink(missing_ok=True)
    variables = tool_environment(run, out)
    wall: dict[str, float] = {}
    for phase, command in (
        ("generate", generate_command(bfcl, run)),
        ("evaluate", evaluate_command(bfcl, run)),
    ):
        log(f"bfcl {phase}: {' '.join(command[1:])}")
        start = time.monotonic()
        run_tool(command, out / LOG_FILE, env=variables, on_line=on_line)
        wall[phase] = round(time.monotonic() - start, 1)
    return write_report(run, out, wall)


def write_report(run: BfclRun, out: Path, wall_s: dict[str, float]) -> BfclReport:
    score_dir = out / "score"
    rows = read_multi_turn_table(score_dir)
    # One model per run directory, so one row; several (other handlers scored into the same
    # directory) cannot be told apart by display name here.
    overall = percent(rows[0][CSV_OVERALL]) if len(rows) == 1 else None
    report = BfclReport(
        requirement=BFCL_REQUIREMENT,
        handler=run.handler,
        model_name=run.model_name,
        base_url=run.base_url,
        limit=run.limit,
        categories=read_category_scores(score_dir, run.handler, run.categories),
        multi_turn_overall=overall,
        score_table=score_dir / MULTI_TURN_CSV,
        wall_s=wall_s,
    )
    write_text_atomic(out / REPORT_FILE, report.model_dump_json(indent=2) + "\n")
    return report


def table_rows(report: BfclReport) -> list[tuple[str, Any]]:
    """(category, 'accuracy (correct/total)') for printing."""
    rows: list[tuple[str, Any]] = []
    for category in MULTI_TURN_CATEGORIES:
        score = report.categories.get(category)
        rows.append(
            (category, f"{score.accuracy:.1%} ({score.correct}/{score.total})" if score else "–")
        )
    overall = report.multi_turn_overall
    rows.append(("multi-turn overall", "–" if overall is None else f"{overall:.1%}"))
    return rows
