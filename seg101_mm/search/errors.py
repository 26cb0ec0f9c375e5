"""Why a search cannot start or go on: ``tools/search.py`` prints these as one ``error:`` line.

Each class also derives from the built-in exception its case would otherwise raise, so that
callers of the Python API can catch ``ValueError``, ``FileExistsError`` or ``RuntimeError``.
"""


class SearchError(Exception):
    """A search refused or stopped; the message names the cause and what to do."""

    #: Exit status of ``tools/search.py``.
    exit_code = 1


class SearchConfigError(SearchError, ValueError):
    """A bad value in the search config (found before anything is written)."""

    exit_code = 2


class SearchExists(SearchError, FileExistsError):
    """The work dir already holds a search, and ``--resume`` was not given."""


class WorkDirBusy(SearchError, RuntimeError):
    """Another search process holds the work dir."""


class SearchStopped(SearchError, RuntimeError):
    """The search ended early: ``max_failures`` reached, or a SIGTERM / SIGINT."""

    def __init__(self, msg, exit_code=1):
        super().__init__(msg)
        self.exit_code = exit_code
