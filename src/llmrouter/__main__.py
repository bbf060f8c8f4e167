"""``python -m llmrouter``: the same as the ``llmrouter`` command."""

from llmrouter.cli import app

app(prog_name="llmrouter")
