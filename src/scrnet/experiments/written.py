"""Writing a comparison's files: the JSON, the Markdown table (:mod:`.compare`) and the forest plot (:mod:`.forest`).
A module of its own so that neither of those imports the other's writer (forest reads compare's definitions, compare
knows nothing of plots)."""

import json
from pathlib import Path

from .compare import format_markdown
from .forest import forest_plot


def write_outputs(result: dict, json_path: str | Path | None = None, markdown_path: str | Path | None = None,
                  plot_path: str | Path | None = None) -> None:
    """Write a :func:`~scrnet.experiments.compare.compare` result as JSON, as a Markdown table and as a forest plot,
    each only where a path is given."""
    for path, text in ((json_path, json.dumps(result, indent=2) + "\n"),
                       (markdown_path, format_markdown(result))):
        if path:
            Path(path).write_text(text)
    if plot_path:
        forest_plot(result, plot_path)
