"""YAML text written by hand for the fuzzers, so that it can carry tags, anchors and aliases.

The two fuzzers (tests/fuzz_scenarios.py, scenario files; tests/test_racefile_fuzz.py, race
files) build a document as Python values with these in it:

- `Raw(text)`: YAML text put in as it is (a tagged scalar, an alias, an odd number, something
  broken);
- `Anchor(name, value)`: `&name value`; `Alias(name)`: `*name`;
- `Tagged(tag, value)`: `!tag value`, a tag on a collection (or a scalar).

A `Writer` writes such values in flow style (`flow`, `scalar`) or as a block mapping
(`block_map`); each fuzzer lays its document out itself. The writers differ only in how they
write a string and a float:

- `ROUND_TRIP` (the scenario fuzzer's): a string is plain wherever PyYAML reads it back as
  itself, else JSON-quoted with its non-ASCII characters kept; any other value it does not
  know (a tuple, say) is written as its str(); a float as its repr;
- `ASCII` (the race-file fuzzer's): a string is plain only if it looks like a name and is no
  YAML word, else JSON-quoted in ASCII (\\u escapes, a lone surrogate too); a tuple is a list;
  a float is .nan, .inf, -.inf or its repr; any other value is a TypeError.

What a fuzzer draws depends on this text byte for byte (the same seed must give the same
files): change a writer only on purpose.
"""

from __future__ import annotations

import functools
import json
import re

import yaml


class Raw:
    """YAML text put in as it is (a tagged scalar, an alias, something broken)."""

    def __init__(self, text: str):
        self.text = text

    def __repr__(self):
        return f"Raw({self.text[:40]!r})"


class Anchor:
    """&name value"""

    def __init__(self, name: str, value):
        self.name, self.value = name, value


class Tagged:
    """!tag value: a tag on a collection (or a scalar) written in flow style."""

    def __init__(self, tag: str, value):
        self.tag, self.value = tag, value


class Alias(Raw):
    """*name"""

    def __init__(self, name: str):
        super().__init__(f"*{name}")


class Writer:
    """Python values as YAML text. text(v) writes a string (and a value of no kind the writer
    knows), real(v) a float; sequences are the types written as a list."""

    def __init__(self, text, real=repr, sequences: tuple = (list,)):
        self.text, self.real, self.sequences = text, real, sequences

    def scalar(self, v) -> str:
        """One value that is not a mapping or a list (one that is is written by text)."""
        if isinstance(v, Anchor):
            return f"&{v.name} {self.flow(v.value)}"
        if isinstance(v, Tagged):
            return f"{v.tag} {self.flow(v.value)}"
        if isinstance(v, Raw):
            return v.text
        if v is None:
            return "null"
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, int):
            return str(v)
        if isinstance(v, float):
            return self.real(v)
        return self.text(v)

    def flow(self, v) -> str:
        """One value in flow style."""
        if isinstance(v, dict):
            return "{" + ", ".join(f"{self.flow(k)}: {self.flow(x)}" for k, x in v.items()) + "}"
        if isinstance(v, self.sequences):
            return "[" + ", ".join(self.flow(x) for x in v) + "]"
        return self.scalar(v)

    def block_map(self, d: dict, indent: int) -> list:
        """The lines of a mapping in block style (a non-empty mapping in it too)."""
        pad = " " * indent
        lines = []
        for k, v in d.items():
            if isinstance(v, dict) and v and not isinstance(k, Raw):
                lines.append(f"{pad}{self.scalar(k)}:")
                lines.extend(self.block_map(v, indent + 2))
            else:
                lines.append(f"{pad}{self.scalar(k)}: {self.flow(v)}")
        return lines


# ---------------------------------------------------------------------------- ROUND_TRIP

_PLAIN = re.compile(r"[A-Za-z0-9_/$][A-Za-z0-9_/.$+\-]*(?: ?(?:±|\+-)? ?[A-Za-z0-9_/.%+\-]+)*")


@functools.lru_cache(maxsize=4096)
def plain_ok(s: str) -> bool:
    """Whether s may be written as a plain scalar in flow context and read back as itself."""
    if len(s) > 200 or not _PLAIN.fullmatch(s):
        return False
    try:
        return yaml.safe_load("[" + s + "]") == [s]
    except yaml.YAMLError:
        return False


def _round_trip_text(v) -> str:
    s = str(v)
    return s if plain_ok(s) else json.dumps(s, ensure_ascii=False)


ROUND_TRIP = Writer(_round_trip_text)

# ---------------------------------------------------------------------------- ASCII

PLAIN = re.compile(r"^[A-Za-z/_][A-Za-z0-9/_.\-]*$")
YAML_WORDS = {"y", "n", "yes", "no", "on", "off", "true", "false", "null", "nan", "inf"}


def _ascii_text(v) -> str:
    if isinstance(v, str):
        if PLAIN.match(v) and v.lower() not in YAML_WORDS and len(v) < 100:
            return v
        return json.dumps(v)                # a JSON string is a YAML double-quoted scalar
    raise TypeError(v)


def _yaml_real(v: float) -> str:
    return ".nan" if v != v else ".inf" if v == float("inf") else "-.inf" if \
        v == float("-inf") else repr(v)


ASCII = Writer(_ascii_text, _yaml_real, (list, tuple))
