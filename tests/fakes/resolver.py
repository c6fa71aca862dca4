"""A resolver whose answers the test scripts: no test ever asks real DNS about a name."""

from __future__ import annotations

from service.ports import ResolveError


class ScriptedResolver:
    def __init__(self, answers: dict[str, list[str]] | None = None) -> None:
        self.answers = dict(answers or {})
        self.asked: list[str] = []

    async def resolve(self, host: str, port: int) -> list[str]:
        self.asked.append(host)
        if host not in self.answers:
            raise ResolveError(f"{host}: no such name")
        return list(self.answers[host])
