"""The version of tdsl: one place, read by the package, the build cache keys and the generated files."""

__version__ = "0.1.0"
