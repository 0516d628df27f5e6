"""`python -m tdsl` is `tdslc`."""
import sys

from .cli import main

sys.exit(main())
