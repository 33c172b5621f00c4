"""Write ``docs/parameters.md``, the table of every configuration parameter, from the
parameters' declarations in the code.

Run from anywhere after changing a declaration (a test fails while the page is out of date):

    python scripts/write_parameter_docs.py
"""

from __future__ import annotations

from pathlib import Path

from qt_backtest.parameter_docs import parameter_table

PAGE = Path(__file__).resolve().parents[1] / "docs" / "parameters.md"


def main() -> None:
    PAGE.parent.mkdir(exist_ok=True)
    PAGE.write_text(parameter_table(), encoding="utf-8")
    print(f"wrote {PAGE}")


if __name__ == "__main__":
    main()
