"""
Quote user-supplied values in error messages without letting them flood a log.

A rejection reason must name what was wrong, but the value comes from outside (a 1000-character
encoding in an Image message, a 10,000-number parameter list): messages show its start and size.
"""

import reprlib
from typing import Any

_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 48
_REPR.maxlist = _REPR.maxtuple = 12


def short_repr(value: Any) -> str:
    """repr() of value, with long strings and lists cut in the middle and marked with '...'."""
    text = _REPR.repr(value)
    if isinstance(value, (str, bytes)) and len(value) > _REPR.maxstring:
        text += f' ({len(value)} characters)'
    elif isinstance(value, (list, tuple)) and len(value) > _REPR.maxlist:
        text += f' ({len(value)} items)'
    return text


def clip(text: str, limit: int = 300) -> str:
    """Text cut to limit characters, marked when cut (exception texts from libraries may echo whole values)."""
    return text if len(text) <= limit else f'{text[:limit]}... ({len(text)} characters)'
