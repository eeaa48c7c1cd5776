"""Load the YAML configuration: interpolate ``${VAR}``, validate, and name every problem by file:line and path.

Every problem is reported, not only the first: YAML syntax errors (by their mark), unresolved
variables, and each pydantic validation error, mapped back to the line of the key it concerns.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from core.config import AgentConfig
from core.errors import ConfigError, ConfigProblem

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
Loc = tuple[str | int, ...]


def load_config(path: str | Path, env: Mapping[str, str] | None = None) -> AgentConfig:
    """Read, interpolate and validate a configuration file; raise ``ConfigError`` listing every problem."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(
            [ConfigProblem(file, None, "", "configuration file not found (set HEALTH_AGENT_CONFIG or --config)")]
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([ConfigProblem(file, None, "", f"cannot read the file: {exc}")]) from None
    return parse_config(text, file=file, env=os.environ if env is None else env)


def parse_config(text: str, *, file: str = "<config>", env: Mapping[str, str] | None = None) -> AgentConfig:
    """Validate configuration text; ``file`` is only used to name places in errors."""
    tree = _parse_yaml(text, file)
    if tree is None:
        tree = CommentedMap()
    if not isinstance(tree, CommentedMap):
        raise ConfigError(
            [ConfigProblem(file, 1, "", "the file must be a mapping of sections (sources, scoring, ...)")]
        )
    problems: list[ConfigProblem] = []
    data = _plain(tree, (), file, env if env is not None else os.environ, problems, tree)
    try:
        config = AgentConfig.model_validate(data)
    except ValidationError as exc:
        problems.extend(_problem_from_error(err, tree, file) for err in exc.errors(include_url=False))
        config = None
    if problems:
        problems.sort(key=lambda p: (p.line or 0, p.path))
        raise ConfigError(problems)
    assert config is not None
    return config


def _parse_yaml(text: str, file: str) -> Any:
    yaml = YAML(typ="rt")
    yaml.allow_duplicate_keys = False
    try:
        return yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        what = " ".join(x for x in (exc.context, exc.problem) if x)
        raise ConfigError([ConfigProblem(file, line, "", f"invalid YAML: {what}")]) from None
    except YAMLError as exc:
        raise ConfigError([ConfigProblem(file, None, "", f"invalid YAML: {exc}")]) from None


def _plain(node: Any, loc: Loc, file: str, env: Mapping[str, str], problems: list[ConfigProblem], tree: Any) -> Any:
    """ruamel nodes -> plain dicts/lists, with ``${VAR}`` and ``${VAR:-default}`` replaced in strings."""
    if isinstance(node, CommentedMap):
        return {str(k): _plain(v, (*loc, str(k)), file, env, problems, tree) for k, v in node.items()}
    if isinstance(node, CommentedSeq):
        return [_plain(v, (*loc, i), file, env, problems, tree) for i, v in enumerate(node)]
    if isinstance(node, str) and "${" in node:
        return _interpolate(str(node), loc, file, env, problems, tree)
    return node


def _interpolate(
    value: str, loc: Loc, file: str, env: Mapping[str, str], problems: list[ConfigProblem], tree: Any
) -> str:

    def replace(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name in env and env[name] != "":
            return env[name]
        if default is not None:
            return default
        problems.append(
            ConfigProblem(
                file,
                _line_of(loc, tree),
                _dotted(loc),
                f"environment variable {name} is not set and has no default (write ${{{name}:-value}})",
            )
        )
        return ""

    return _VAR.sub(replace, value)


def _problem_from_error(err: Mapping[str, Any], tree: CommentedMap, file: str) -> ConfigProblem:
    loc: Loc = tuple(err.get("loc", ()))
    # Drop pydantic's union-member tags (e.g. "function-after[...]"), which are not keys in the file.
    key_loc = _key_path(loc, tree)
    line = _line_of(key_loc, tree)
    message = str(err.get("msg", "invalid value"))
    message = message.removeprefix("Value error, ").removeprefix("Assertion failed, ")
    kind = err.get("type")
    if kind == "extra_forbidden":
        message = f"unknown key (allowed here: {_allowed_keys(key_loc[:-1])})"
    elif kind == "missing":
        message = "required, but missing"
    elif (
        "input" in err and kind not in ("value_error", "assertion_error") and not isinstance(err["input"], (dict, list))
    ):
        message = f"{message} (got {err['input']!r})"
    return ConfigProblem(file, line, _dotted(key_loc), message)


def _key_path(loc: Loc, tree: Any) -> Loc:
    """Keep only the parts of a pydantic location that are keys or indexes in the YAML tree."""
    out: list[str | int] = []
    node: Any = tree
    for part in loc:
        if isinstance(node, CommentedMap) and str(part) in node:
            out.append(str(part))
            node = node[str(part)]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            out.append(part)
            node = node[part]
        elif isinstance(node, CommentedMap) and _is_discriminator(str(part), node):
            continue  # a discriminated union's tag (e.g. "tiered" for `kind: tiered`): not a key in the file
        elif isinstance(node, (CommentedMap, CommentedSeq)) and (isinstance(part, int) or not _is_tag(str(part))):
            out.append(part)  # a missing key: name it, at its parent's line
            node = None
    return tuple(out)


def _is_discriminator(part: str, node: CommentedMap) -> bool:
    """True when ``part`` is the value of one of the mapping's scalar fields, as a union tag is."""
    return any(isinstance(v, (str, int)) and not isinstance(v, bool) and str(v) == part for v in node.values())


def _is_tag(part: str) -> bool:
    return any(ch in part for ch in "[]()") or part in ("function-after", "function-before", "function-wrap")


def _line_of(loc: Loc, tree: Any) -> int | None:
    node: Any = tree
    line: int | None = 1
    for part in loc:
        if isinstance(node, CommentedMap) and str(part) in node:
            line = node.lc.key(str(part))[0] + 1
            node = node[str(part)]
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and 0 <= part < len(node):
            line = node.lc.item(part)[0] + 1
            node = node[part]
        else:
            if isinstance(node, (CommentedMap, CommentedSeq)):
                line = node.lc.line + 1
            break
    return line


def _allowed_keys(parent: Loc) -> str:
    model: Any = AgentConfig
    for part in parent:
        if isinstance(part, int):
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return "see `health-agent config schema`"
        model = _model_in(field.annotation)
        if model is None:
            return "see `health-agent config schema`"
    fields = getattr(model, "model_fields", {})
    return ", ".join(sorted(fields)) if fields else "none"


def _model_in(annotation: Any) -> Any:
    """The pydantic model inside an annotation like ``X``, ``X | None``, ``list[X]`` or ``dict[str, X]``."""
    if hasattr(annotation, "model_fields"):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def config_json_schema() -> dict[str, Any]:
    """The JSON Schema of the configuration file, for editors (``health-agent config schema``)."""
    schema = AgentConfig.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "crm-health-agent configuration"
    return schema
