"""The command palette (ctrl+p): the current screen's actions, by name."""
from __future__ import annotations

from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider

from .screens.execution import ExecutionScreen
from .screens.executions import FILTERS, ExecutionsScreen


def _commands(screen: object) -> list[tuple[str, str, str]]:
    """``(name, help, action)`` for ``screen``."""
    found = [("Help", "every key of the app", "app.help")]
    if isinstance(screen, ExecutionsScreen):
        found += [(f"Show {name or 'all'} executions", "status filter", f"filter({i})")
                  for i, name in enumerate(FILTERS)]
        found += [("Sort by the next column", "s; S reverses", "next_sort"),
                  ("Reverse the sort order", "", "reverse_sort"),
                  ("Copy the highlighted execution's id", "y", "copy_id"),
                  ("First row", "g", "first"), ("Last row", "G", "last"),
                  ("Search executions", "by id or workflow", "search"),
                  ("Cancel the highlighted execution", "its steps' workers are killed", "cancel"),
                  ("Resume the highlighted execution", "its next run", "resume"),
                  ("Restart the highlighted execution", "R: every step again, from scratch", "restart"),
                  ("Delete the highlighted execution", "a finished one, with its steps", "delete"),
                  ("Reload", "read the journals again (ctrl+r)", "app.reload")]
    if isinstance(screen, ExecutionScreen):
        found += [("Toggle the timeline", "steps per worker", "toggle_timeline"),
                  ("Next page of steps", "]", "page(1)"), ("Previous page of steps", "[", "page(-1)"),
                  ("First step", "g", "first"), ("Last step", "G", "last"),
                  ("Only failed steps (or every step)", "f", "toggle_failed"),
                  ("Next failed step", "n", "next_failed"), ("Go to a step key", "/", "goto"),
                  ("Copy the execution's id", "y", "copy_id"), ("Copy the highlighted step's key", "Y", "copy_step"),
                  ("Reload", "read again (ctrl+r)", "app.reload"),
                  ("Cancel this execution", "its steps' workers are killed", "cancel"),
                  ("Resume this execution", "its next run", "resume"),
                  ("Retry the highlighted step", "a failed one; completed steps are reused", "retry"),
                  ("Restart this execution", "R: every step again, from scratch", "restart"),
                  ("Run the highlighted step again", "e: a completed one; the rest is reused", "rerun"),
                  ("Fork from the highlighted step", "F: a new execution reusing the steps before it", "fork"),
                  ("Delete this execution", "a finished one, with its steps", "delete")]
    return found


class ZartCommands(Provider):
    async def _run(self, action: str) -> None:
        if action.startswith("app."):
            await self.app.run_action(action[4:])
        else:
            await self.screen.run_action(action)

    async def discover(self) -> Hits:
        for name, help_text, action in _commands(self.screen):
            yield DiscoveryHit(name, partial(self._run, action), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for name, help_text, action in _commands(self.screen):
            score = matcher.match(name)
            if score > 0:
                yield Hit(score, matcher.highlight(name), partial(self._run, action), help=help_text)
