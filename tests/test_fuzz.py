"""Fuzz: `parity-jax plan` on generated configs answers exit 0, or exit 2 with exactly one
`error: ` line and no traceback, within the profile's deadline per config.

Configs are generated field by field from a small valid parity (or tabular, on sklearn:wine)
study: one to three fields replaced by wrong types, extreme and boundary integers, non-finite
floats, unicode, lists, tables or unknown keys; or the whole file replaced by undecodable bytes,
Latin-1 text, deep nesting or a 5000-digit integer. Profiles (tests/conftest.py): "ci" (the
default, 150 examples, repeatable) and "long" (`--hypothesis-profile=long`).

The example count and the longest plan time are printed at the end and, when
``PARITY_JAX_FUZZ_STATS`` names a file, written there as JSON.
"""

import contextlib
import dataclasses
import datetime
import io
import json
import math
import os
import re
import tempfile
import time
import tomllib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from parity_jax import cli, targets
from parity_jax.kinds.parity.config import Model, Study, Task, Train
from parity_jax.kinds.tabular.config import MLP, Forest, Split, TabularStudy

pytestmark = pytest.mark.quick  # pure Python: make test-quick

# every setting's rule: both kinds' tables and the built-in targets' parameters
_RULES = {**Study.RULES, **{f"task.{p}": targets.param_rule(p) for p in targets.param_names()},
          **TabularStudy.RULES}


def _kind_of(key: str) -> str:
    """A rule's kind, a polynomial's lists by name (their rules are custom checks)."""
    return key.split(".")[1] if key in ("task.terms", "task.coefs") else _RULES[key].kind

# ---- a TOML writer (tomllib only reads) ----------------------------------------------------------

_BARE = re.compile(r"[A-Za-z0-9_-]+")


def _key(k: str) -> str:
    return k if _BARE.fullmatch(k) else _string(k)


def _string(s: str) -> str:
    out = []
    for c in s:
        if c in '"\\':
            out.append("\\" + c)
        elif ord(c) < 0x20 or ord(c) == 0x7F:
            out.append(f"\\u{ord(c):04x}")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return hex(v) if v >= 0 and v.bit_length() > 4000 else str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return _string(v)
    if isinstance(v, datetime.date | datetime.datetime | datetime.time):
        return v.isoformat()
    if isinstance(v, list | tuple):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_key(k)} = {toml_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(type(v))


def to_toml(d: dict) -> str:
    """Top-level scalars (and non-table sections) first, then one [table] per dict."""
    lines = [f"{_key(k)} = {toml_value(v)}" for k, v in d.items() if not isinstance(v, dict)]
    for k, v in d.items():
        if isinstance(v, dict):
            lines.append(f"[{_key(k)}]")
            lines += [f"{_key(sk)} = {toml_value(sv)}" for sk, sv in v.items()]
    return "\n".join(lines) + "\n"


# ---- generated configs ---------------------------------------------------------------------------

PARITY_BASE = {"name": "fuzz", "seeds": 2,
               "task": {"n": 8, "k": 2, "m": 16, "n_test": 16},
               "model": {"width": 4},
               "train": {"steps": 10, "batch": 4, "eval_every": 5}}
TABULAR_BASE = {"name": "fuzz-tab", "seeds": 1, "datasets": ["sklearn:wine"], "fractions": [1.0],
                "mlp": {"width": [4], "init": "dense", "s": [2], "optimizer": "sgd",
                        "lr": [0.1], "batch": 8, "steps": 10, "eval_every": 5},
                "forest": {"iterations": 1, "n_estimators_max": 10}}

# parity_jax.targets' built-ins
TARGETS = ["parity", "majority", "staircase", "polynomial", "hermite"]
BOUNDARY_INTS = [0, 1, -1, 2, 16, 2**16, 2**31 - 2, 2**31 - 1, 2**31, 2**32 - 1, 2**32,
                 2**63 - 1, 2**63, 2**64 - 1, 2**64, -(2**63), 10**5, 10**5 + 1, 10**6,
                 10**6 + 1, 10**9, 10**9 + 1, 10**12, 10**18, 10**30]
ints = st.one_of(st.integers(-3, 40), st.sampled_from(BOUNDARY_INTS),
                 st.integers(-(2**80), 2**80))
floats = st.one_of(st.floats(), st.sampled_from([0.0, -0.0, 0.5, 1.0, 0.49999999999, 1e-300,
                                                 5e-324, 1e308, math.inf, -math.inf, math.nan]))
texts = st.text(alphabet=st.characters(exclude_categories=("Cs",)), max_size=12)
scalars = st.one_of(ints, floats, texts, st.booleans(), st.dates(), st.datetimes())
junk = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                     st.dictionaries(texts, inner, max_size=3)),
                    max_leaves=6)
# dataset specs that never reach the network (benchmark names and openml:ID would fetch)
datasets = st.one_of(st.sampled_from(["sklearn:wine", "sklearn:nope", "parity:rows=5",
                                      "parity:rows=300,k=2", "parity:k=x", "nope", "", "x.csv",
                                      "x.npz", "sklearn:digits"]),
                     st.builds(lambda o, v: f"parity:{o}={v}",
                               st.sampled_from(["rows", "features", "k", "noise", "seed", "x"]),
                               st.one_of(ints, floats, texts)),
                     texts.filter(lambda s: not s.startswith("openml:")
                                  and s not in _registry_names()))


def _registry_names() -> set:
    from parity_jax import datasets

    return set(datasets.BY_NAME)


def values_for(key: str):
    """Values for setting ``key``: mostly of its own kind (any size), sometimes anything."""
    rule = _RULES[key]
    own = {"int": ints, "float": floats, "bool": st.booleans(), "str": texts,
           "choice": st.one_of(st.sampled_from(rule.choices or ("x",)), texts),
           "terms": st.lists(st.lists(ints, max_size=4), max_size=4),
           "coefs": st.lists(floats, max_size=4)}[_kind_of(key)]
    if key == "task.target":
        own = st.one_of(st.sampled_from(TARGETS), texts)
    if key == "datasets":
        own = datasets
    return st.one_of(own, own, st.lists(own, max_size=4), junk)


def valid_values_for(key: str):
    """Values within setting ``key``'s own rule, its bounds included (the grid may still be
    refused: products of sizes, trials)."""
    rule = _RULES[key]
    kind = _kind_of(key)
    if kind == "int":
        hi = 8 if isinstance(rule.hi, str) else rule.hi  # k, s <= n (8 in the base config)
        return st.one_of(st.sampled_from([rule.lo, rule.lo + 1, hi - 1, hi]),
                         st.integers(rule.lo, hi))
    if kind == "float":
        bounded = rule.hi != math.inf
        return st.floats(rule.lo, rule.hi if bounded else None, allow_nan=False,
                         allow_infinity=False, exclude_min=rule.lo_open,
                         exclude_max=rule.hi_open and bounded)
    if kind == "choice":
        return st.sampled_from(rule.choices)
    if kind == "bool":
        return st.booleans()
    if kind == "terms":  # positions 1..k (k = 2 in the base config)
        return st.lists(st.lists(st.integers(1, 2), min_size=1, max_size=2, unique=True),
                        min_size=1, max_size=3)
    if kind == "coefs":
        return st.lists(st.floats(-10, 10), min_size=1, max_size=3)
    if key == "task.target":
        return st.sampled_from(TARGETS)
    return st.just("sklearn:wine") if key == "datasets" else st.sampled_from(["x", "é ü", "a/b"])


def _settings(kind) -> list[str]:
    if kind == "tabular":
        return list(TabularStudy.RULES)
    keys = list(Study.RULES)
    i = keys.index("task.target") + 1
    return keys[:i] + [f"task.{p}" for p in targets.param_names()] + keys[i:]


@st.composite
def mutated(draw, kind: str) -> dict:
    d = json.loads(json.dumps(PARITY_BASE if kind == "parity" else TABULAR_BASE))
    keys = _settings(kind)
    for _ in range(draw(st.integers(1, 3))):
        what = draw(st.sampled_from(["setting"] * 6 + ["valid"] * 3 + ["unknown", "section"]))
        if what in ("setting", "valid"):
            key = draw(st.sampled_from(keys))
            value = draw(values_for(key) if what == "setting" else valid_values_for(key))
            if "." in key:
                section, name = key.split(".")
                if isinstance(d.get(section, {}), dict):
                    d.setdefault(section, {})[name] = value
            else:
                d[key] = value
        elif what == "unknown":
            name = draw(texts.filter(bool))
            section = draw(st.sampled_from([None, *(k for k in d if isinstance(d[k], dict))]))
            (d if section is None else d[section])[name] = draw(junk)
        else:  # a whole section of the wrong type
            section = draw(st.sampled_from([k for k in d if isinstance(d[k], dict)] or ["x"]))
            d[section] = draw(scalars)
    return d


@st.composite
def raw_files(draw) -> bytes:
    """Whole files that are not a study: undecodable, Latin-1, nested, huge."""
    which = draw(st.sampled_from(["bytes", "latin1", "text", "nested", "digits", "bom"]))
    if which == "bytes":
        return draw(st.binary(min_size=1, max_size=200))
    if which == "latin1":
        return to_toml({**PARITY_BASE, "name": "café"}).encode("latin-1")
    if which == "text":
        return draw(texts).encode("utf-8")
    if which == "nested":
        depth = draw(st.sampled_from([10, 200, 999, 5000]))
        return f"seeds = {'[' * depth}{']' * depth}\n".encode()
    if which == "digits":
        return f"seed = {'9' * draw(st.integers(4290, 4400))}\n".encode()
    return b"\xef\xbb\xbf" + to_toml(PARITY_BASE).encode()


configs = st.one_of(
    mutated("parity").map(lambda d: to_toml(d).encode("utf-8")),
    mutated("parity").map(lambda d: to_toml(d).encode("utf-8")),
    mutated("parity").map(lambda d: to_toml(d).encode("utf-8")),
    mutated("tabular").map(lambda d: to_toml(d).encode("utf-8")),
    raw_files(),
)


# ---- the property --------------------------------------------------------------------------------


def plan(path: Path) -> tuple[int, list[str], float]:
    out, err = io.StringIO(), io.StringIO()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(["plan", str(path)])
    return code, err.getvalue().splitlines(), time.perf_counter() - start


def test_the_toml_writer_round_trips():
    for d in (PARITY_BASE, TABULAR_BASE,
              {"name": "a\nb\x00\"c\\", "task": {"n": [1, 2**70], "noise": 0.25},
               "x y": {"é": [[1], {"a": True}]}, "when": datetime.date(2024, 1, 2)}):
        assert tomllib.loads(to_toml(d)) == d


def test_base_configs_plan(tmp_path):
    for base in (PARITY_BASE, TABULAR_BASE):
        path = tmp_path / "base.toml"
        path.write_text(to_toml(base))
        code, err, _ = plan(path)
        assert code == 0 and err == [], err


@pytest.mark.slow
def test_plan_answers_every_config_with_exit_0_or_one_error_line(capsys):
    stats = {"examples": 0, "exit_0": 0, "exit_2": 0, "longest_s": 0.0, "longest": None}

    @given(data=configs)
    def check(data: bytes):
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "study.toml"
            path.write_bytes(data)
            code, err, seconds = plan(path)
        stats["examples"] += 1
        if seconds > stats["longest_s"]:
            stats["longest_s"], stats["longest"] = seconds, data[:300].decode("utf-8", "replace")
        assert code in (0, 2), (code, err)
        stats[f"exit_{code}"] += 1
        if code == 2:
            assert len(err) == 1 and err[0].startswith("error: "), err
            assert "Traceback" not in err[0]

    check()
    with capsys.disabled():
        print(f"\nfuzz: {stats['examples']} examples (exit 0: {stats['exit_0']}, exit 2: "
              f"{stats['exit_2']}); longest plan {stats['longest_s']:.2f} s for "
              f"{stats['longest']!r}")
    if os.environ.get("PARITY_JAX_FUZZ_STATS"):
        Path(os.environ["PARITY_JAX_FUZZ_STATS"]).write_text(json.dumps(stats, indent=1))
    assert stats["exit_0"] and stats["exit_2"]  # both paths were exercised


def test_settings_are_the_rule_table():
    # the fuzz draws its fields from the rule table: every field of the dataclasses is there
    for section in (Task, Model, Train, Split, MLP, Forest):
        for f in dataclasses.fields(section):
            assert f.name == "params" or any(k.endswith(f".{f.name}") for k in _RULES), f.name
