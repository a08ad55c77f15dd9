"""Read artefact YAML files from a user's repository into validated drafts.

Every problem names its file, and its line and column where YAML can tell: the whole batch is
checked before anything is written, so a push of ten files with one bad file writes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from seamline.core.errors import InvalidInput, NotFound
from seamline.core.jsonl import json_objects
from seamline.registry.specs import ArtefactSpec, canonical_content, spec_type

YAML_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class Draft:
    """A validated artefact, not yet in the registry."""

    kind: str
    name: str
    content: dict[str, Any]
    source: str


def collect_files(paths: list[Path]) -> list[Path]:
    """Files as given, folders searched recursively for YAML, in a stable order."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix in YAML_SUFFIXES))
        elif path.is_file():
            files.append(path)
        else:
            raise InvalidInput(f"{path}: no such file or folder", code="file_not_found")
    return files


def load_drafts(paths: list[Path]) -> list[Draft]:
    """Load and validate every file; raise one :class:`InvalidInput` listing all problems."""
    drafts: list[Draft] = []
    problems: list[str] = []
    for file in collect_files(paths):
        try:
            text = file.read_text(encoding="utf-8")
            drafts.append(load_draft(text, source=str(file), folder=file.parent))
        except InvalidInput as exc:
            problems.append(exc.message)
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{file}: cannot read: {exc}")
    seen: dict[tuple[str, str], str] = {}
    for draft in drafts:
        key = (draft.kind, draft.name)
        if key in seen:
            problems.append(
                f"{draft.source}: {draft.kind} {draft.name!r} is also defined in {seen[key]}"
            )
        seen[key] = draft.source
    if problems:
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        raise InvalidInput(problems[0] + more, code="invalid_artefact_file")
    return drafts


def load_draft(text: str, *, source: str, folder: Path | None = None) -> Draft:
    """One artefact from YAML text; ``folder``: where files it names (an eval set's
    ``cases_file``) are read from, when it came from a file."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise InvalidInput(
            f"{source}{where}: invalid YAML: {problem}", code="invalid_yaml"
        ) from None
    if not isinstance(data, dict):
        raise InvalidInput(f"{source}: expected a mapping at the top level", code="invalid_yaml")
    if "cases_file" in data:
        data = _with_cases_file(data, source, folder)
    return draft_from_mapping(data, source=source, node=node)


def _with_cases_file(data: dict[str, Any], source: str, folder: Path | None) -> dict[str, Any]:
    """An eval set's ``cases_file`` (JSON Lines, one case per line, beside the YAML) read
    into its ``cases``: what is versioned is the cases, not a path."""
    data = dict(data)
    name = data.pop("cases_file")
    if folder is None or not isinstance(name, str):
        raise InvalidInput(
            f"{source}: cases_file must name a JSON Lines file beside the YAML",
            code="invalid_artefact",
        )
    path = folder / name
    try:
        cases = [*(data.get("cases") or []), *(row for _, row in json_objects(path))]
    except NotFound:
        raise InvalidInput(
            f"{source}: cannot read cases_file {path}: no such file", code="invalid_artefact"
        ) from None
    data["cases"] = cases
    return data


def draft_from_mapping(
    data: dict[str, Any], *, source: str, node: yaml.Node | None = None
) -> Draft:
    """Validate one artefact given as a mapping (from YAML, or JSON over the HTTP API)."""
    try:
        model = spec_type(str(data.get("kind", "prompt")))
    except ValueError as exc:
        raise InvalidInput(f"{source}: {exc}", code="invalid_artefact") from None
    try:
        spec: ArtefactSpec = model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(_describe(exc, source, node), code="invalid_artefact") from None
    return Draft(kind=spec.kind, name=spec.name, content=canonical_content(spec), source=source)


def _describe(exc: ValidationError, source: str, node: yaml.Node | None) -> str:
    error = exc.errors()[0]
    loc = [part for part in error["loc"] if not _is_union_tag(part)]
    field = ".".join(str(part) for part in loc) or "(file)"
    line = _line_of(node, loc)
    where = f"{source}:{line}" if line else source
    message = str(error["msg"]).removeprefix("Value error, ")
    return f"{where}: {field}: {message}"


def _is_union_tag(part: Any) -> bool:
    # pydantic names the union member it tried ("str", "InlineModel"); users never wrote it.
    return isinstance(part, str) and (part[:1].isupper() or part in ("str", "int", "float"))


def _line_of(node: yaml.Node | None, loc: list[Any]) -> int | None:
    """The 1-based line of the YAML node at ``loc``, or of its nearest ancestor."""
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in loc:
        child: yaml.Node | None = None
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == part), None)
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            child = node.value[part] if part < len(node.value) else None
        if child is None:
            break
        node = child
        line = node.start_mark.line + 1
    return line
