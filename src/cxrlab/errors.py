"""The one exception type the CLI turns into a one-line message on stderr and a non-zero exit."""

from __future__ import annotations


class CxrlabError(Exception):
    """A problem with the user's data or arguments: the message names the file and the problem.

    ``exit_code`` is 1 for data problems and 2 for usage errors (the CLI's convention; 0 is success).
    """

    exit_code: int = 1

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(CxrlabError):
    """A wrong argument or option value (exit 2): the message names the parameter and what it takes."""

    exit_code = 2


class ParameterError(UsageError):
    """A bad value of one named parameter of a library function; the CLI names its flag instead.

    The message reads ``<parameter> <problem>`` ("iou must be in (0, 1), got 2.0"); :meth:`for_flag` gives
    the same sentence with the command's flag ("--iou must be ...").
    """

    def __init__(self, parameter: str, problem: str, *, exit_code: int | None = None) -> None:
        super().__init__(f"{parameter} {problem}", exit_code=exit_code)
        self.parameter = parameter
        self.problem = problem

    def for_flag(self, flag: str) -> UsageError:
        return UsageError(f"{flag} {self.problem}", exit_code=self.exit_code)
