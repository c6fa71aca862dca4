"""What every refusal looks like: a 4xx answer (never a 5xx) whose body is problem+json."""

from __future__ import annotations

from typing import Any

import httpx

PROBLEM_JSON = "application/problem+json"


def problem(answer: httpx.Response) -> dict[str, Any]:
    """The problem in ``answer``, which must be a 4xx problem+json."""
    assert 400 <= answer.status_code < 500, (answer.status_code, answer.text)
    assert answer.headers["content-type"].startswith(PROBLEM_JSON), answer.headers
    return answer.json()
