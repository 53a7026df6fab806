"""User-facing errors: one actionable line, printed by the CLI without a traceback."""


class KinheritError(Exception):
    """Bad input or an impossible request. The message names the problem and the fix."""
