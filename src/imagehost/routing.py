"""The route table's matcher: a path either matches a route fully, matches with the wrong method
(405 with Allow), or matches nothing (404).

Patterns are literal segments and `{name}` parameters, each parameter with its own tight
regular expression; nothing is ever matched with `.*`. A trailing slash is optional everywhere.
"""

import re
from collections.abc import Callable
from dataclasses import dataclass

from .errors import MethodNotAllowed, NotFound


@dataclass(frozen=True)
class Route:
    method: str
    pattern: str  # e.g. "/api/upload/{filename}"
    handler: Callable
    summary: str = ""


@dataclass(frozen=True)
class Match:
    route: Route
    params: dict[str, str]


class Router:
    """Holds routes; `match(method, path)` returns a Match or raises NotFound/MethodNotAllowed."""

    def __init__(self, routes: list[Route], params: dict[str, str]):
        self.routes = routes
        self._compiled = [(route, self._compile(route.pattern, params)) for route in routes]

    @staticmethod
    def _compile(pattern: str, params: dict[str, str]) -> re.Pattern:
        def param(m: re.Match) -> str:
            return f"(?P<{m.group(1)}>{params[m.group(1)]})"

        regex = re.sub(
            r"\{(\w+)\}", param, re.escape(pattern).replace(r"\{", "{").replace(r"\}", "}")
        )
        return re.compile(f"^{regex.rstrip('/')}/?\\Z")

    def match(self, method: str, path: str) -> Match:
        allowed = []
        for route, regex in self._compiled:
            found = regex.match(path)
            if not found:
                continue
            if route.method == method or (method == "HEAD" and route.method == "GET"):
                return Match(route, found.groupdict())
            allowed.append(route.method)
        if allowed:
            if "GET" in allowed:
                allowed.append("HEAD")
            allow = ", ".join(sorted(set(allowed)))
            raise MethodNotAllowed(
                f"{method} is not allowed here; use {allow}.", headers={"Allow": allow}
            )
        raise NotFound()
