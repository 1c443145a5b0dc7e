"""The task registry's contract: every entry of `sim.tasks.TASKS` is a Task subclass that carries its own
key as `name`, and has a scripted expert, its own or (for a variant that subclasses another task) its
nearest registered ancestor's."""

import pytest

from sim.experts import EXPERTS, make_expert
from sim.tasks import TASKS, Task, get_task
from vla.core.policy import make_policy


@pytest.mark.parametrize("name", TASKS.names())
def test_every_task_is_named_by_its_key(name):
    cls = TASKS.get(name)
    assert issubclass(cls, Task) and vars(cls)["name"] == name and get_task(name).name == name


@pytest.mark.parametrize("name", TASKS.names())
def test_every_task_has_an_expert_through_its_ancestry(name):
    owner = next(c.name for c in TASKS.get(name).__mro__ if getattr(c, "name", "") in EXPERTS)
    assert type(make_expert(name)) is EXPERTS[owner]
    assert type(make_policy("expert", task=name)) is EXPERTS[owner]
    if name not in EXPERTS:  # a variant: its parent task is registered too
        assert owner in TASKS and owner != name


def test_variants_get_their_parents_expert():
    assert type(make_expert("pick_colour")) is EXPERTS["pick"]
    assert type(make_expert("pick_concepts")) is EXPERTS["pick"]
    assert type(make_expert("arrange_one")) is EXPERTS["arrange"]
