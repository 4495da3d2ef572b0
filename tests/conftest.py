"""Strict numerics for every test; the CPU split into 4 devices (for sharding)."""

import gc
import os
import sqlite3
import sys
from pathlib import Path

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=4")
os.environ.setdefault("PARITY_JAX_CACHE", "off")  # tests compile afresh (test_cli tests the cache)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import pytest  # noqa: E402

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_debug_key_reuse", True)

sys.path.insert(0, os.path.dirname(__file__))

from parity_jax import devices, targets, trackers  # noqa: E402
from parity_jax.core import Batch, Shape  # noqa: E402
from parity_jax.kinds.parity.config import Model, Study, Task, Train  # noqa: E402
from parity_jax.tasks import sparse  # noqa: E402


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drops each test module's compiled programs after it. Every XLA:CPU executable keeps its
    code in memory maps of its own; a whole run's executables passed Linux's limit of 65,530
    maps per process (``vm.max_map_count``), where LLVM's next allocation segfaulted inside
    a compile (seen in test_tabular once test_kernel's interpret-mode programs were added)."""
    yield
    devices._program.cache_clear()
    jax.clear_caches()
    gc.collect()


# Two groups of three trials of mixed widths/inits/lr/wd sharing each group's data stream.
GROUPS = [
    {"data": 0, "m": 100, "trials": [
        {"init": 0, "width": 16, "sparse": False},
        {"init": 1, "width": 5, "sparse": True, "s": 2, "lr": 0.05},
        {"init": 2, "width": 12, "sparse": True, "s": 3, "wd": 0.0}]},
    {"data": 1, "m": 64, "k": 2, "noise": 0.1, "trials": [
        {"init": 3, "width": 16, "sparse": True, "s": 1, "lr": 0.2},
        {"init": 4, "width": 7, "sparse": False, "wd": 0.05}]},
]


# A tiny parity study (8 cells x 2 seeds, seconds to run) several CLI tests share.
TINY_TOML = """
name = "tiny"
seeds = 2
[task]
n = 10
k = 2
m = [40, 80]
n_test = 100
[model]
width = [4, 8]
init = ["dense", "sparse"]
[train]
steps = 200
batch = 8
"""

def one_error(capsys) -> str:
    """The one `error: ...` line a refused command wrote to stderr, checked to be all it wrote."""
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


# A script holding the one-writer lock on argv[1] for a minute: another process using out.
HOLD_LOCK = """
import sys, time
from parity_jax import lock
with lock.lock(sys.argv[1]):
    print("held", flush=True)
    time.sleep(60)
"""


def make_victim(tmp_path) -> tuple[Path, bytes]:
    """A file a link may point at, and its bytes: to show nothing is written through the link."""
    victim = tmp_path / "victim.txt"
    victim.write_bytes(b"precious\n" * 3)
    return victim, victim.read_bytes()


EXPERIMENTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                           "experiments")


def load_experiment(name: str):
    """experiments/NAME.py as a module (the scripts are not a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, os.path.join(EXPERIMENTS, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def make_batch(groups: list[dict], P: int, *, seed: int = 0) -> Batch:
    """A Batch from explicit groups: {"data": int, "m", "k", "noise", "trials": [dict, ...]}.

    Trial dict: init (int key id), width, sparse, s, lr, wd, steps, threshold, stop.
    Missing trials pad the group (invalid).
    """
    root = jax.random.key(seed)

    def per_trial(name, default, dtype):
        return jnp.array([[t.get(name, default) for t in g["trials"]]
                          + [default] * (P - len(g["trials"])) for g in groups], dtype)

    init_ids = per_trial("init", 0, jnp.int32)
    return Batch(
        task=sparse.Inputs(
            data_key=jax.vmap(lambda i: jax.random.fold_in(root, i))(
                jnp.array([g["data"] for g in groups])),
            k=jnp.array([g.get("k", 3) for g in groups], jnp.int32),
            m=jnp.array([g["m"] for g in groups], jnp.int32),
            noise=jnp.array([g.get("noise", 0.0) for g in groups], jnp.float32)),
        init_key=jax.vmap(jax.vmap(lambda i: jax.random.fold_in(root, 1000 + i)))(init_ids),
        width=per_trial("width", 1, jnp.int32),
        sparse=per_trial("sparse", False, bool),
        s=per_trial("s", 2, jnp.int32),
        lr=per_trial("lr", 0.1, jnp.float32),
        wd=per_trial("wd", 0.01, jnp.float32),
        steps=per_trial("steps", 300, jnp.int32),
        track=trackers.FirstHitInputs(threshold=per_trial("threshold", 0.1, jnp.float32),
                                      stop_on_success=per_trial("stop", False, bool)),
        valid=jnp.array([[True] * len(g["trials"]) + [False] * (P - len(g["trials"]))
                         for g in groups]),
    )


@pytest.fixture
def fresh_kernel_state():
    """No kernel verdicts and no traced program before and after the test (a patched kernel is
    traced anew)."""
    from parity_jax import kernel_check

    def clear():
        kernel_check._verdicts.clear()
        devices._program.cache_clear()
        jax.clear_caches()

    clear()
    yield
    clear()


@pytest.fixture
def shape_factory():
    def make(n=12, M=128, batch=8, n_test=256, online=False, **kw):
        """A parity program's shape; the CPU's choices (fused step, blocked layout for depth
        1) unless ``step``/``layout`` say otherwise."""
        base = dict(depth=1, W=16, eval_every=100, loss="hinge", G=1, P=1)
        base.update(kw)
        base.setdefault("step", "fused" if base["depth"] == 1 else "sgd")
        base.setdefault("layout", "blocked" if base["depth"] == 1 else "vmapped")
        return Shape(task=sparse.SparseTask(n=n, M=M, batch=batch, n_test=n_test, online=online),
                     **base)

    return make


# Hypothesis (tests/test_fuzz.py): "ci", the default, is bounded and repeatable (a fixed set of
# examples, well under a minute); `pytest --hypothesis-profile=long tests/test_fuzz.py` searches
# far longer with fresh random examples. The deadline bounds one example (one `plan`): the
# largest configs the rules allow (10^6 trials) plan in about 7 s on the 2-core machine.
import datetime  # noqa: E402

from hypothesis import HealthCheck, settings  # noqa: E402

_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large]
settings.register_profile("ci", max_examples=150, derandomize=True, database=None,
                          deadline=datetime.timedelta(seconds=30),
                          suppress_health_check=_SLOW_OK)
settings.register_profile("long", max_examples=3000, deadline=datetime.timedelta(seconds=30),
                          suppress_health_check=_SLOW_OK)
settings.load_profile("ci")  # --hypothesis-profile=NAME (loaded after this file) overrides it


# A small study that runs in seconds, shared by the tests of devices, shards, merge and check.
SCALE_STUDY = Study(name="scale", seeds=3, task=Task(n=10, k=2, m=[40, 80], n_test=100),
                    model=Model(width=[8, 16, 32], init=["dense", "sparse"]),
                    train=Train(steps=400, batch=8, eval_every=50))


def stored_trials(out):
    """Every stored parity trial row of ``out``'s store, by (cell, seed)."""
    with sqlite3.connect(out / "results.sqlite") as conn:
        return conn.execute("SELECT * FROM trials ORDER BY cell, seed").fetchall()


def small_shape(**kw):
    """A tiny parity program shape (n 12, M 64, width 8, 1 group of 2), overridable."""
    task = {k: kw.pop(k) for k in ("n", "M", "n_test", "eval_rows") if k in kw}
    task = {"n": 12, "M": 64, "n_test": 64, **task}
    base = dict(depth=1, W=8, G=1, P=2, eval_every=10, loss="hinge", step="fused",
                layout="blocked")
    base.update(kw)
    return Shape(task=sparse.SparseTask(batch=8, **task), **base)


def small_batch(shape):
    """Inputs of ``small_shape``: group g reads stream g, trial p init p."""
    return make_batch([{"data": g, "m": shape.task.M, "trials": [
        {"init": p, "width": shape.W} for p in range(shape.P)]} for g in range(shape.G)],
        P=shape.P)


@pytest.fixture
def registered():
    """Registers targets for one test; they are gone after it."""
    names = []

    def register(name, fn, **kw):
        targets.register_target(name, fn, **kw)
        names.append(name)

    yield register
    for name in names:
        targets._TARGETS.pop(name, None)
