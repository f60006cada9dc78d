"""Errors that reach a person: each names the thing that is wrong and how to fix it."""


class InputError(Exception):
    """Bad input or usage. The CLI exits 2 and the HTTP API answers 4xx; nothing is recorded."""

    def __init__(self, subject: str, problem: str, fix: str = "") -> None:
        self.subject = subject
        self.problem = problem
        self.fix = fix
        super().__init__(self.message)

    @property
    def message(self) -> str:
        text = f"{self.subject}: {self.problem}"
        return f"{text}. Fix: {self.fix}" if self.fix else text
