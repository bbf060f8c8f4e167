"""Request and ranking types: a ranking keeps the caller's task unless it decides one."""

from __future__ import annotations

from _fixtures.fakes import spec

from llmrouter import BaseRouter, Ranking, RouteRequest, route_of


class Plain(BaseRouter):
    """Ranks without a word about the task (the docs' simplest router)."""

    def rank(self, request: RouteRequest) -> Ranking:
        return Ranking(list(self.models), reason="as given")


class Deciding(BaseRouter):
    def rank(self, request: RouteRequest) -> Ranking:
        return Ranking(list(self.models), reason="mine", task="summarize", task_source="mine")


class Undecided(BaseRouter):
    def rank(self, request: RouteRequest) -> Ranking:
        return Ranking(list(self.models), reason="none found", task_source="classifier:none")


def test_a_ranking_keeps_the_callers_task_by_default() -> None:
    record = route_of(Plain(models=[spec("a")]).invoke("x", task="code_generation"))
    assert (record.task, record.task_source) == ("code_generation", "explicit")
    config = {"metadata": {"task": "chat"}}
    record = route_of(Plain(models=[spec("a")]).invoke("x", config=config))
    assert (record.task, record.task_source) == ("chat", "config")


def test_a_ranking_that_decides_the_task_wins() -> None:
    record = route_of(Deciding(models=[spec("a")]).invoke("x", task="code_generation"))
    assert (record.task, record.task_source) == ("summarize", "mine")


def test_a_ranking_that_found_no_task_says_so() -> None:
    record = route_of(Undecided(models=[spec("a")]).invoke("x"))
    assert (record.task, record.task_source) == (None, "classifier:none")


def test_route_and_aroute_are_on_every_router() -> None:
    router = Plain(models=[spec("a", reply="hi")])
    message = router.route("translation", "bonjour")
    assert message.content == "hi" and route_of(message).task == "translation"


async def test_aroute_passes_the_task() -> None:
    router = Plain(models=[spec("a", reply="hi")])
    assert route_of(await router.aroute("chat", "hello")).task == "chat"
