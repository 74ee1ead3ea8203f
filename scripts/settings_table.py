"""Print the Markdown table of every setting (env var, default, description) for the README."""

from __future__ import annotations

from percolate_reading.config import ENV_PREFIX, Settings


def settings_table() -> str:
    lines = ["| Variable | Default | Description |", "| --- | --- | --- |"]
    for name, field in Settings.model_fields.items():
        default = field.default
        shown = "" if default is None else str(getattr(default, "value", default))
        lines.append(f"| `{ENV_PREFIX}{name.upper()}` | `{shown}` | {field.description or ''} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(settings_table())
