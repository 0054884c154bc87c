"""Sessions: ``nox`` runs the tests, lint and type checks; ``nox -s build`` builds the wheel."""

import nox

nox.options.sessions = ["tests", "lint", "typecheck"]


@nox.session(python=["3.11", "3.12", "3.13"])
def tests(session: nox.Session) -> None:
    session.install("-e", ".[test]")
    session.run("pytest", *session.posargs)


@nox.session
def lint(session: nox.Session) -> None:
    session.install("ruff>=0.8")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".[test,lint]")
    session.run("mypy")


@nox.session
def build(session: nox.Session) -> None:
    session.install("build>=1.2", "twine>=5")
    session.run("python", "-m", "build")
    session.run("twine", "check", "dist/*")
