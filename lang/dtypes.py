"""The five dtypes of tdsl and NumPy 2 (NEP 50) promotion with weak operands."""
from __future__ import annotations

import numpy as np

DTYPES = ("bool", "i32", "i64", "f32", "f64")

NUMPY_DTYPE = {
    "bool": np.dtype(np.bool_),
    "i32": np.dtype(np.int32),
    "i64": np.dtype(np.int64),
    "f32": np.dtype(np.float32),
    "f64": np.dtype(np.float64),
}
FROM_NUMPY = {v: k for k, v in NUMPY_DTYPE.items()}

# A Python scalar of each kind stands for a weak operand when asking NumPy.
_WEAK_STAND_IN = {"bool": True, "int": 0, "float": 0.0}


def kind(dtype: str) -> str:
    """'bool', 'int' or 'float'."""
    if dtype == "bool":
        return "bool"
    return "int" if dtype.startswith("i") else "float"


def is_float(dtype: str) -> bool:
    return dtype in ("f32", "f64")


def is_int(dtype: str) -> bool:
    return dtype in ("i32", "i64")


def to_numpy(dtype: str) -> np.dtype:
    return NUMPY_DTYPE[dtype]


def from_numpy(dtype) -> str | None:
    """The tdsl name of a NumPy dtype, or None when tdsl has no such dtype."""
    return FROM_NUMPY.get(np.dtype(dtype))


def dtype_name(value) -> str | None:
    """tdsl's name of a dtype given as tdsl's name (`"f32"`), as NumPy's (`"float32"`, `"f4"`,
    `np.float32`, `np.dtype("float32")`) or as a Python type (`float`: f64, `int`: i64, `bool`),
    as `np.dtype(value)` reads it (byte order aside); None when tdsl has no such dtype or `value`
    names none."""
    if isinstance(value, str) and value in NUMPY_DTYPE:
        return value
    if not isinstance(value, (str, type, np.dtype)):   # np.dtype(None) is f64; no values, no lists
        return None
    try:
        dtype = np.dtype(value)
    except (TypeError, ValueError, SyntaxError):   # SyntaxError: a malformed structured-dtype string
        return None
    if dtype.byteorder not in "=|":
        dtype = dtype.newbyteorder("=")
    return FROM_NUMPY.get(dtype)


ACCEPTED = "bool, i32, i64, f32, f64, or NumPy's names, types and dtypes for them (\"float32\", np.float32, " \
           "\"f4\", float, int, bool)"


def parse_dtype(value, loc=None) -> str:
    """tdsl's name of the dtype `value` (see dtype_name); a TdslTypeError listing the accepted
    ones when tdsl has no such dtype."""
    name = dtype_name(value)
    if name is None:
        from .errors import TdslTypeError
        shown = value.type_str + " value" if hasattr(value, "type_str") else repr(value)
        if isinstance(value, (str, type, np.dtype)):
            try:
                shown += f" ({np.dtype(value)})" if str(np.dtype(value)) != str(value) else ""
            except (TypeError, ValueError, SyntaxError):
                pass
        raise TdslTypeError(f"dtype must be one of {ACCEPTED}, not {shown}", loc)
    return name


def promote(operands: list[tuple[str, bool]]) -> tuple[str, bool]:
    """Result (dtype, weak) of combining (dtype, weak) operands the way NumPy 2 does.

    Weak operands (literals, consts, size variables) behave as Python scalars: they
    take the dtype of the strong operands unless their kind is higher.
    """
    strong = [np.dtype(NUMPY_DTYPE[d]) for d, weak in operands if not weak]
    weak = [d for d, w in operands if w]
    if not strong:
        # Only weak operands: the highest kind wins, at its default width.
        dt = np.result_type(*[NUMPY_DTYPE[d] for d in weak])
        return FROM_NUMPY[np.dtype(dt)], True
    stand_ins = [_WEAK_STAND_IN[kind(d)] for d in weak]
    return FROM_NUMPY[np.dtype(np.result_type(*strong, *stand_ins))], False


def float_result(dtype: str) -> str:
    """The float dtype a true division or transcendental gives for `dtype` (i32 -> f64)."""
    return dtype if is_float(dtype) else "f64"


def can_cast_safe(src: str, dst: str) -> bool:
    return bool(np.can_cast(NUMPY_DTYPE[src], NUMPY_DTYPE[dst], "safe"))
