"""What to say when a package rlm needs cannot be imported: which package, and the command that installs it.

Standard library only: it is imported before anything that could be missing.
"""

from __future__ import annotations

import sys

__all__ = ["missing_dependency"]

# Import names whose package is called something else on PyPI.
_PACKAGES = {"dotenv": "python-dotenv", "re2": "google-re2", "genai_prices": "genai-prices", "pydantic": "openai"}
# Optional pieces: the extra of rlm that brings each.
_EXTRAS = {"mcp": "mcp", "fsspec": "remote", "s3fs": "remote", "aiohttp": "remote", "ray": "ray"}


def missing_dependency(exc: ModuleNotFoundError) -> str:
    """One line naming the missing package and the command that installs it."""
    top = (exc.name or str(exc)).split(".")[0]
    python = sys.executable or "python"
    if top == "rlm":  # a module of rlm itself: a broken install, not a missing package
        return f"{exc}: this copy of rlm is incomplete; reinstall it ({python} -m pip install --force-reinstall rlm)."
    if top in _EXTRAS:
        return (f"this needs the optional package {top!r}, which this Python ({python}) cannot import. "
                f"Install it with: {python} -m pip install \"rlm[{_EXTRAS[top]}]\" "
                f"(in a clone: {python} -m pip install -e \".[{_EXTRAS[top]}]\").")
    package = _PACKAGES.get(top, top)
    return (f"rlm needs the package {package!r}, which this Python ({python}) cannot import. Install rlm's "
            f"requirements with: {python} -m pip install -r requirements.txt (in a clone), or pip install rlm; "
            "or run rlm from the virtual environment it is installed in.")
