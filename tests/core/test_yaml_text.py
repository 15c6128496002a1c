"""YAML is read with a bound on what its aliases expand to."""

from __future__ import annotations

import pytest
import yaml

from agentwheel.core.resources import bundled_config
from agentwheel.core.yaml_text import MAX_YAML_NODES, YamlTooLarge, load_yaml
from agentwheel.flywheels.agentic.workflow_loader import workflow_paths

LAUGHS = ["a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]"] + [
    f"{name}: &{name} [{', '.join([f'*{prev}'] * 9)}]"
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True)
]
BILLION_LAUGHS = "\n".join(LAUGHS) + "\n"


def test_billion_laughs_is_refused_before_anything_is_built():
    assert len(LAUGHS) <= 10
    with pytest.raises(YamlTooLarge, match="expands to more than"):
        load_yaml(BILLION_LAUGHS)


def test_an_alias_inside_its_own_anchor_is_refused():
    with pytest.raises(YamlTooLarge):
        load_yaml("a: &a [1, *a]\n")


def test_nesting_past_the_parser_limit_is_a_yaml_error():
    with pytest.raises(yaml.YAMLError, match="nests too deep"):
        load_yaml("[" * 1_500 + "]" * 1_500)


def test_aliases_that_stay_small_still_load_like_safe_load():
    text = "tool: &t {name: get, kind: query}\nsteps: [{tool: *t}, {tool: *t}]\n"
    assert load_yaml(text) == yaml.safe_load(text)
    # 9 x 9 x 9 values from three lines: aliases that expand, but within the bound.
    nested = "\n".join(LAUGHS[:3]) + "\n"
    assert len(load_yaml(nested)["c"]) == 9 and MAX_YAML_NODES > 9**3


def test_every_bundled_workflow_and_config_loads():
    for path in [*workflow_paths(), bundled_config("tiny"), bundled_config("study")]:
        assert load_yaml(path.read_text()) == yaml.safe_load(path.read_text()), path
