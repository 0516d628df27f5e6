"""IPython and Jupyter: `%load_ext tdsl`, then `%%tdsl` cells (docs/python.md, "Notebooks")."""
from __future__ import annotations

import sys

from IPython.core.magic import Magics, cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring

from .errors import TdslError


@magics_class
class TdslMagics(Magics):
    """The `%%tdsl` cell magic."""

    @magic_arguments()
    @argument("-t", "--target", default="c", help="the target to compile for: c (default), numpy or opencl")
    @argument("-n", "--name", default=None, help="also bind the Module under this name")
    @argument("-q", "--quiet", action="store_true", help="show nothing: the cell's value is None")
    @cell_magic
    def tdsl(self, line: str, cell: str):
        """Compile the cell as a .tdsl program and bind each of its functions by its name.

        The cell's value is the Module (Jupyter shows its signatures), or None with --quiet.
        A tdsl error prints as `tdslc` prints it, located in `<cell N>` (lines counted from
        the line after `%%tdsl`), without a Python traceback.
        """
        from .pipeline import compile_source
        args = parse_argstring(self.tdsl, line)
        filename = f"<cell {_cell_number(self.shell)}>"
        try:
            module = compile_source(cell, filename, args.target)
        except TdslError as err:
            print(err.render(), file=sys.stderr)
            return None
        ns = self.shell.user_ns
        for f in module:
            ns[f.name] = f
        if args.name:
            ns[args.name] = module
        return None if args.quiet else module


def _cell_number(shell) -> int:
    """The running cell's number, as its `In [N]` prompt shows it (IPython 9 counts the next cell
    from the start of this one; the cell's ExecutionResult keeps its own)."""
    count = getattr(getattr(shell.displayhook, "exec_result", None), "execution_count", None)
    return shell.execution_count if count is None else count


def load_ipython_extension(ip) -> None:
    """`%load_ext tdsl` (or `tdsl.ipython`): register the `%%tdsl` cell magic."""
    ip.register_magics(TdslMagics)
