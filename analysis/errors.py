"""The one exception the analysis raises for bad input; the CLI prints its message and exits 2."""


class AnalysisError(Exception):
    """Bad or unusable input. The message names the file, the field, and what was expected."""
