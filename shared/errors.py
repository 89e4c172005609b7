"""Errors that mean "your input is wrong", not "the code is wrong".

Entry points print these as one clear message and exit 2 (`shared.cli`); anything else keeps
its traceback, because then the bug is ours.
"""

from __future__ import annotations


class InputError(Exception):
    """Base of every expected error: bad config, missing or malformed data, a missing model."""


class DataNotFoundError(InputError, FileNotFoundError):
    """A data file or folder is missing; the message says where we looked and how to get it."""


class ModelNotFoundError(InputError, FileNotFoundError):
    """A registered model is missing; the message names the `make` target that creates it."""
