"""Refuse names that would generate a package that cannot be installed or imported."""

import re
import sys

SLUG = "{{ cookiecutter.provider_slug }}"
IMPORT = "{{ cookiecutter.import_name }}"
CLASS = "{{ cookiecutter.class_name }}"

problems = []
if not re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", SLUG):
    problems.append(
        f"provider_slug {SLUG!r} must be lower-case ASCII letters, digits and single hyphens "
        "(it names the entry point and the distribution orchestrator-<slug>)"
    )
if not (IMPORT.isascii() and IMPORT.isidentifier()):
    problems.append(f"import_name {IMPORT!r} must be an ASCII Python identifier")
if not (CLASS.isascii() and CLASS.isidentifier()):
    problems.append(f"class_name {CLASS!r} must be an ASCII Python identifier")
if problems:
    print(
        "error: " + "; ".join(problems) + ". A provider_name that is not ASCII or starts "
        "with a digit needs them given, e.g. provider_slug=sber-lab import_name="
        "orchestrator_sber_lab class_name=SberLabProvider.",
        file=sys.stderr,
    )
    sys.exit(1)
