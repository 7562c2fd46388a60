"""Progress reporting for long stages: rich bars on stderr, or nothing."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


class Progress:
    """Wraps a rich progress display; stages call :meth:`track` around their loops."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self._rich = None

    def __enter__(self) -> Progress:
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            self._rich = RichProgress(
                TextColumn("{task.description}"),
                BarColumn(),
                _count_column(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=False,
            )
            self._rich.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        if self._rich is not None:
            self._rich.__exit__(*exc)
            self._rich = None

    def track(self, items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
        """Yield ``items`` while advancing a bar called ``description``."""
        if self._rich is None:
            yield from items
            return
        if total is None and hasattr(items, "__len__"):
            total = len(items)  # type: ignore[arg-type]
        task = self._rich.add_task(description, total=total)
        for item in items:
            yield item
            self._rich.advance(task)


    def transfer(self, description: str, total: int | None, done: int = 0) -> Callable[[int], None]:
        """A bar of bytes called ``description``, ``done`` of ``total`` already there; the
        returned function advances it by a number of bytes."""
        if self._rich is None:
            return lambda n: None
        rich, task = self._rich, self._rich.add_task(description, total=total, completed=done, bytes=True)
        return lambda n: rich.advance(task, n)


def _count_column():
    """Items as "n/m", bytes (a task with ``bytes=True``) as "1.2/4.5 MB" with the speed."""
    from rich.progress import DownloadColumn, MofNCompleteColumn, ProgressColumn, TransferSpeedColumn
    from rich.text import Text

    class Count(ProgressColumn):
        items, size, speed = MofNCompleteColumn(), DownloadColumn(), TransferSpeedColumn()

        def render(self, task):
            if task.fields.get("bytes"):
                return Text.assemble(self.size.render(task), " ", self.speed.render(task))
            return self.items.render(task)

    return Count()


#: For callers that want no output (tests, library use).
SILENT = Progress(enabled=False)
