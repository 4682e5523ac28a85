"""Positions and errors: YAML read with where each value stands, and the values a file holds.

The toolkit the scenario loader (memcgsim.scenario) and the race-file loader (memcgsim.racefile)
share: `parse_yaml` turns a text into `Node`s (each value with its `Where`), `error_at` makes
the `ScenarioError` that names a place, `show` quotes a value in a message, `did_you_mean`
suggests a known name, and the readers (`parse_size`, `read_name`, `read_int`, ...) take a value
of one kind or say what is wrong with it, where it is. Nothing here knows what a step is.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from ..errors import MemcgsimError

PAGE = 4096
UNITS = {"": 1, "b": 1, "k": 1 << 10, "kib": 1 << 10, "ki": 1 << 10, "m": 1 << 20,
         "mib": 1 << 20, "mi": 1 << 20, "g": 1 << 30, "gib": 1 << 30, "gi": 1 << 30,
         "t": 1 << 40, "tib": 1 << 40, "ti": 1 << 40}
SIZE_RE = re.compile(r"^\s*(\d+)\s*([A-Za-z]*)\s*$")
#: sizes are u64 in the kernel
MAX_SIZE = (1 << 64) - 1
#: the longest name (task, region, fd, label) and path (file, cgroup) a scenario may use:
#: NAME_MAX and PATH_MAX - 1
MAX_NAME, MAX_PATH = 255, 4095


class ScenarioError(MemcgsimError):
    """An invalid scenario file: where and what (exit status 2)."""

    def __init__(self, file: str, line: int, col: int, message: str):
        self.file, self.line, self.col, self.message = file, line, col, message
        super().__init__(f"{file}:{line}:{col}: {message}")


@dataclass(frozen=True)
class Where:
    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


# ---------------------------------------------------------------------------- YAML with marks


class Node:
    """A YAML value with where it stands in the file."""

    __slots__ = ("value", "where")

    def __init__(self, value, where: Where):
        self.value = value
        self.where = where


#: how many values a file may expand to once its aliases are followed: far above any real
#: scenario (a few hundred values), far below what an alias bomb ("billion laughs") makes
MAX_YAML_VALUES = 100_000
#: how many characters of a value an error message quotes
SHOW_CHARS = 60


def show(value) -> str:
    """A value as an error message quotes it: plain data (never an internal object), cut to
    SHOW_CHARS characters."""
    def plain(v):
        if isinstance(v, Node):
            return plain(v.value)
        if isinstance(v, dict):
            return {k: plain(x[1]) for k, x in v.items()}
        if isinstance(v, list):
            return [plain(x) for x in v]
        return v

    text = repr(plain(value)) if not isinstance(value, int) or value.bit_length() < 200 \
        else f"a {len(str(value))}-digit number"
    return text if len(text) <= SHOW_CHARS else text[:SHOW_CHARS - 3] + "..."


def _expanded_size(root, file: str) -> None:
    """Refuse a document whose aliases expand to more than MAX_YAML_VALUES values, or refer
    to themselves, before anything is expanded (sizes are counted once per distinct node)."""
    import yaml

    size: dict[int, int] = {}
    on_path: set[int] = set()

    def count(node) -> int:
        key = id(node)
        if key in size:
            return size[key]
        if key in on_path:
            raise ScenarioError(file, node.start_mark.line + 1, node.start_mark.column + 1,
                                "not valid YAML here: an alias that refers to itself")
        if isinstance(node, yaml.MappingNode):
            kids = [n for pair in node.value for n in pair]
        elif isinstance(node, yaml.SequenceNode):
            kids = node.value
        else:
            size[key] = 1
            return 1
        on_path.add(key)
        total = 1
        for kid in kids:
            total += count(kid)
            if total > MAX_YAML_VALUES:
                raise ScenarioError(
                    file, node.start_mark.line + 1, node.start_mark.column + 1,
                    f"this value expands to more than {MAX_YAML_VALUES:,} values once its "
                    "aliases are followed (an alias bomb?)")
        on_path.discard(key)
        size[key] = total
        return total

    count(root)


#: the tags safe loading takes on a mapping and on a list
_MAPPING_TAGS = ("tag:yaml.org,2002:map", "tag:yaml.org,2002:set")
_SEQUENCE_TAGS = ("tag:yaml.org,2002:seq", "tag:yaml.org,2002:omap", "tag:yaml.org,2002:pairs")


def _to_nodes(node, file: str):
    import yaml

    where = Where(file, node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
        # what safe loading refuses (a !!python/object on a mapping, !!seq on one), as it
        # says it
        mapping = isinstance(node, yaml.MappingNode)
        if node.tag not in yaml.constructor.SafeConstructor.yaml_constructors:
            raise ScenarioError(file, where.line, where.col, "not valid YAML: could not "
                                f"determine a constructor for the tag {cut(repr(node.tag))}")
        if node.tag not in (_MAPPING_TAGS if mapping else _SEQUENCE_TAGS):
            raise ScenarioError(file, where.line, where.col, f"not valid YAML: the tag "
                                f"{cut(repr(node.tag))} is not for a "
                                f"{'mapping' if mapping else 'list'}")
    if isinstance(node, yaml.MappingNode):
        out: dict[str, tuple[Node, Node]] = {}
        for knode, vnode in node.value:
            key = _to_nodes(knode, file)
            if not isinstance(key.value, str):
                raise ScenarioError(file, key.where.line, key.where.col,
                                    f"a key must be a name, not {show(key.value)}")
            if key.value in out:
                raise ScenarioError(file, key.where.line, key.where.col,
                                    f"duplicate key {show(key.value)}")
            out[key.value] = (key, _to_nodes(vnode, file))
        return Node(out, where)
    if isinstance(node, yaml.SequenceNode):
        return Node([_to_nodes(n, file) for n in node.value], where)
    if not isinstance(node, yaml.ScalarNode):
        raise ScenarioError(file, where.line, where.col, "not valid YAML: unexpected node")
    try:
        value = yaml.constructor.SafeConstructor().construct_object(node)
    except yaml.YAMLError as e:
        problem = getattr(e, "problem", None) or str(e)
        raise ScenarioError(file, where.line, where.col,
                            f"not valid YAML: {cut(problem)}") from None
    except Exception:
        # PyYAML's own constructors fail on some malformed tagged values (a bad !!timestamp
        # is an AttributeError, a number past Python's digit limit a ValueError)
        kind = node.tag.rsplit(":", 1)[-1]
        raise ScenarioError(file, where.line, where.col, f"not valid YAML: {show(node.value)} "
                            + ("is too large a number" if kind == "int" and re.fullmatch(
                                r"[-+]?[0-9_]+", str(node.value)) else
                               f"is not a valid {kind} value")) from None
    if isinstance(value, str) and len(value) > MAX_PATH:
        raise ScenarioError(file, where.line, where.col,
                            f"a text of {len(value):,} characters: at most {MAX_PATH} here")
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        raise ScenarioError(file, where.line, where.col,
                            f"{show(value)} is too large: numbers here are at most 2**64")
    return Node(value, where)


def cut(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def parse_yaml(text: str, file: str) -> Node:
    import yaml

    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None)
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        if isinstance(e, yaml.reader.ReaderError) and isinstance(e.position, int):
            # a character YAML does not allow (NUL, an escape): where it stands
            before = text[:e.position]
            line, col = before.count("\n") + 1, e.position - before.rfind("\n")
        problem = getattr(e, "problem", None) or str(e)
        raise ScenarioError(file, line, col, f"not valid YAML: {problem}") from None
    except RecursionError:
        raise ScenarioError(file, _too_deep_line(text), 1,
                            "not valid YAML: nested too deeply") from None
    if root is None:
        raise ScenarioError(file, 1, 1, "the file is empty: a scenario needs format: 1 and steps")
    try:
        _expanded_size(root, file)
        nodes = _to_nodes(root, file)
    except RecursionError:
        raise ScenarioError(file, _deepest_line(root), 1,
                            "not valid YAML here: an alias that refers to itself, or "
                            "nesting too deep") from None
    _safely_loadable(root, file)
    return nodes


def _safely_loadable(root, file: str) -> None:
    """Refuse what yaml.safe_load refuses and the nodes let by (an !!omap of a mapping with
    two keys), where safe loading says (the aliases are bounded by then)."""
    import yaml

    try:
        yaml.constructor.SafeConstructor().construct_document(root)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None) or getattr(e, "context_mark", None) \
            or root.start_mark
        problem = getattr(e, "problem", None) or str(e)
        raise ScenarioError(file, mark.line + 1, mark.column + 1,
                            f"not valid YAML: {cut(problem)}") from None


def _too_deep_line(text: str, limit: int = 100) -> int:
    """The line where brackets first nest deeper than limit."""
    depth = 0
    for n, line in enumerate(text.splitlines(), 1):
        for ch in line:
            depth += ch in "[{"
            depth -= ch in "]}"
            if depth > limit:
                return n
    return 1


def _deepest_line(root) -> int:
    """The line where a self-referencing or too deep structure starts (for its error)."""
    import yaml

    node, seen = root, set()
    while isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and id(node) not in seen:
        seen.add(id(node))
        kids = [v for _, v in node.value] if isinstance(node, yaml.MappingNode) else node.value
        nested = [k for k in kids if isinstance(k, (yaml.MappingNode, yaml.SequenceNode))]
        if not nested:
            break
        node = nested[-1]
    return node.start_mark.line + 1


def error_at(node_or_where, message: str):
    w = node_or_where.where if isinstance(node_or_where, Node) else node_or_where
    return ScenarioError(w.file, w.line, w.col, message)


def did_you_mean(name: str, known) -> str:
    close = difflib.get_close_matches(name, sorted(known), n=1)
    return f" (did you mean {show(close[0])}?)" if close else ""


# ---------------------------------------------------------------------------- values


def parse_size(node: Node, what: str, whole_pages: bool) -> int:
    """A size: integer bytes, or a number with B, K/KiB/Ki, M/MiB/Mi, G/GiB/Gi, T/TiB/Ti."""
    v = node.value
    if isinstance(v, bool):
        raise error_at(node, f"{what}: want a size like 50MiB, not {show(v)}")
    if isinstance(v, int):
        size = v
    elif isinstance(v, str) and (m := SIZE_RE.match(v)) and m.group(2).lower() in UNITS:
        if len(m.group(1).lstrip("0")) > 20:
            raise error_at(node, f"{what}: {show(v)} is larger than a 64-bit size")
        size = int(m.group(1)) * UNITS[m.group(2).lower()]
    else:
        raise error_at(node, f"{what}: {show(v)} is not a size (use bytes or a unit: B, K, KiB, M, "
                         "MiB, G, GiB, T, TiB)")
    if size < 0:
        raise error_at(node, f"{what}: a size cannot be negative")
    if size > MAX_SIZE:
        raise error_at(node, f"{what}: {show(v)} is larger than a 64-bit size")
    if whole_pages and size % PAGE:
        raise error_at(node, f"{what}: {show(v)} is not a whole number of 4 KiB pages")
    return size


def read_name(node: Node, what: str, limit: int = MAX_NAME) -> str:
    if not isinstance(node.value, str) or not node.value:
        raise error_at(node, f"{what}: want a name, not {show(node.value)}")
    if len(node.value) > limit or "\0" in node.value:
        raise error_at(node, f"{what}: {show(node.value)} is not a name: at most {limit} "
                         "characters, no NUL")
    return node.value


def read_text(node: Node, what: str) -> str:
    """A label or a text to write: one plain value (a string, a number or a boolean)."""
    v = node.value
    if v is None or isinstance(v, (dict, list, bytes, set)):
        raise error_at(node, f"{what}: want a text, not {show(v)}")
    return str(v)


def read_file_name(node: Node, what: str = "file") -> str:
    return read_name(node, what, MAX_PATH)


def read_cgroup_path(node: Node, what: str = "cgroup") -> str:
    p = node.value
    if not isinstance(p, str) or not p.startswith("/") or (p != "/" and p.endswith("/")) \
            or "//" in p or "\0" in p or len(p) > MAX_PATH:
        raise error_at(node, f"{what}: want a cgroup path like /web/worker, not {show(p)}")
    return p


def read_int(node: Node, what: str, lo: int = 0, hi: int | None = None) -> int:
    v = node.value
    if not isinstance(v, int) or isinstance(v, bool) or v < lo or (hi is not None and v > hi):
        want = f"from {lo} to {hi}" if hi is not None else f">= {lo}"
        raise error_at(node, f"{what}: want a whole number {want}, not {show(v)}")
    return v



def text_line_of(file: str, offset: int) -> int:
    with open(file, "rb") as f:
        return f.read(offset).count(b"\n") + 1


def read_source(file: str) -> str:
    """A YAML file's text; ScenarioError if it cannot be read or is not UTF-8."""
    try:
        with open(file, encoding="utf-8") as f:
            return f.read()
    except OSError as e:
        raise ScenarioError(file, 1, 1, f"cannot read the file: {e.strerror}") from None
    except UnicodeDecodeError as e:
        line = text_line_of(file, e.start)
        raise ScenarioError(file, line, 1, "the file is not UTF-8 text") from None

