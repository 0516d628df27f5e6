"""The one Jinja environment over templates/: c/, opencl/, and common/ (what both dialects share).

Templates are named by their path under templates/ (`c/module.c.j2`), so an OpenCL
template can import the shared macros of `common/` as a C one does. Jinja is imported
here, on first use: warm loads never render.
"""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from tdsl.ops import helpers, libmvec_functions

from .cexpr import c_comment, c_string, py_string, py_text


@lru_cache(maxsize=None)
def environment():
    """The environment every renderer uses (StrictUndefined, trim_blocks, lstrip_blocks).

    Compiled templates are kept in Jinja's bytecode cache in the temporary folder (keyed
    by each template's checksum), which saves a fresh process ~0.1 s of template compiling.
    """
    import jinja2
    import tdsl.templates
    try:
        bytecode_cache = _bytecode_cache(jinja2)
    except (OSError, RuntimeError):   # no usable temporary folder: compile every time
        bytecode_cache = None
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(tdsl.templates.__file__).parent),
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
                             keep_trailing_newline=True, bytecode_cache=bytecode_cache)
    env.globals["pad"] = lambda depth: "    " * depth
    # from the op table: the math calls with SIMD forms (C prelude) and the helpers ops carry
    env.globals["libmvec"] = libmvec_functions()
    env.globals["op_helpers"] = op_helpers
    # user text (file names, signatures, source lines, messages) is printed through these only
    env.filters.update(c_comment=c_comment, c_string=c_string, py_text=py_text, py_string=py_string)
    return env


def _bytecode_cache(jinja2):
    """Jinja's bytecode cache (in its private folder of the temporary folder, which Jinja checks
    is the user's own), read and written as the compile cache is: only regular files of bounded
    size are read (a FIFO there would hang), and a failed write (a full disk) is no error."""
    import io
    from . import cache

    class Cache(jinja2.FileSystemBytecodeCache):
        def load_bytecode(self, bucket) -> None:
            data = cache.read_small(Path(self._get_cache_filename(bucket)), 16 << 20)
            if data is not None:
                bucket.load_bytecode(io.BytesIO(data))   # (a damaged one is ignored by Jinja)

        def dump_bytecode(self, bucket) -> None:
            out = io.BytesIO()
            bucket.write_bytecode(out)
            try:
                cache.write_atomic(Path(self._get_cache_filename(bucket)), out.getvalue())
            except cache.CacheWriteError:
                pass

    return Cache()


def op_helpers(T: str, C: str, f: str) -> str:
    """The helper functions of the op table (`Op.helper`) for one float dtype, as the preludes print them."""
    return "".join(op.helper_source(T, C, f) for op in helpers())
