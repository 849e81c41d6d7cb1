"""Render the README's error-code table from visionpack.errors (the single source).

python3 tools/docs/error_table.py            # print the table
python3 tools/docs/error_table.py --write    # replace it between the README markers
"""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "package"))

from visionpack.errors import error_table  # noqa: E402

BEGIN, END = "<!-- error-table:begin -->", "<!-- error-table:end -->"


def render() -> str:
    lines = [
        "| error | EasyDL `error_code` / `error_msg` | HTTP (PaddleX `errorCode`) | installer exit | how to fix |",
        "|---|---|---|---|---|",
    ]
    for row in error_table():
        api = f"`{row['easydl_code']}` {row['message']}" if row["easydl_code"] else "—"
        http = str(row["http_status"]) if row["http_status"] else "—"
        exit_ = str(row["exit_code"]) if row["exit_code"] is not None else "—"
        lines.append(f"| `{row['slug']}` | {api} | {http} | {exit_} | {row['hint']} |")
    return "\n".join(lines)


def splice(readme: str) -> str:
    head, _, rest = readme.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{render()}\n{END}{tail}"


if __name__ == "__main__":
    if "--write" in sys.argv:
        path = REPO / "README.md"
        path.write_text(splice(path.read_text(encoding="utf-8")), encoding="utf-8")
    else:
        print(render())
