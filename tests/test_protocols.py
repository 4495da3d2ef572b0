"""The task and tracker protocols: both tasks and both trackers keep them, a class missing a
member does not, and the protocols name everything the core calls (a task that exposes only
its protocol's members trains to the same outcome)."""

import dataclasses
import functools

import jax
import numpy as np
import pytest
from conftest import GROUPS, make_batch

from parity_jax import core, trackers
from parity_jax.tasks import KernelTask, Task, sparse, xy

PARITY = sparse.SparseTask(n=12, M=128, batch=8, n_test=256)
XY = xy.XYTask(d=5, n_train=100, batch=16)


def _members(protocol) -> set[str]:
    """The names a protocol declares (methods, properties and annotated attributes)."""
    names = set()
    for cls in protocol.__mro__:
        if cls in (object,) or not getattr(cls, "_is_protocol", False):
            continue
        names |= {n for n in vars(cls) if not n.startswith("_")}
        names |= set(getattr(cls, "__annotations__", {}))
    return names


def _without(cls, name: str):
    """A copy of a task/tracker class without one member."""
    attrs = {k: v for k, v in vars(cls).items() if k not in ("__dict__", "__weakref__", name)}
    return type(f"No_{name}", (), attrs)


def test_both_tasks_keep_the_task_protocol():
    assert isinstance(PARITY, Task) and isinstance(XY, Task)
    assert isinstance(PARITY, KernelTask) and not isinstance(XY, KernelTask)


@pytest.mark.parametrize("name", sorted(_members(Task)))
def test_a_task_missing_a_member_does_not_keep_it(name):
    fields = {f.name: getattr(PARITY, f.name) for f in dataclasses.fields(PARITY)}
    partial = _without(sparse.SparseTask, name)
    obj = partial.__new__(partial)
    obj.__dict__.update(fields)
    if name in fields:  # a dataclass field lives on the instance
        del obj.__dict__[name]
    assert not isinstance(obj, Task)


def test_both_trackers_keep_the_tracker_protocol():
    for tracker in (trackers.FirstHit, trackers.BestValidation):
        assert isinstance(tracker, trackers.Tracker) and isinstance(tracker(), trackers.Tracker)
    assert all(isinstance(trackers.make(name), trackers.Tracker) for name in trackers.TRACKERS)
    assert _members(trackers.Tracker) == {"curves", "init", "update", "stopped", "outcome"}


@pytest.mark.parametrize("name", ["curves", "init", "update", "stopped", "outcome"])
def test_a_tracker_missing_a_member_does_not_keep_it(name):
    assert not isinstance(_without(trackers.FirstHit, name), trackers.Tracker)


@dataclasses.dataclass(frozen=True)
class _ProtocolOnly:
    """A task that lets the core see only the ``Task`` protocol's members of ``task``."""

    task: sparse.SparseTask

    def __getattr__(self, name):
        if name not in _members(Task):
            raise AttributeError(f"{name} is not in the Task protocol")
        return getattr(self.task, name)


@pytest.mark.parametrize("layout", ["blocked", "vmapped"])  # sgd: the group loss too
def test_the_core_calls_nothing_outside_the_task_protocol(shape_factory, layout):
    shape = shape_factory(G=2, P=3, W=16, step="sgd", layout=layout)
    narrow = dataclasses.replace(shape, task=_ProtocolOnly(shape.task))
    b = make_batch(GROUPS, P=3)
    want = jax.device_get(jax.jit(functools.partial(core.train, shape))(b)[0])
    got = jax.device_get(jax.jit(functools.partial(core.train, narrow))(b)[0])
    for field in dataclasses.fields(want):
        np.testing.assert_array_equal(getattr(got, field.name), getattr(want, field.name))
