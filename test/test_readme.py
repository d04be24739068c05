"""The README stays true: two commands first, and the topic and service tables match the code."""
import re
from pathlib import Path

from aloe.graph.topics import CONTRACT, SERVICES

README = (Path(__file__).parents[1] / "README.md").read_text()


def table_rows(header_start):
    """Rows of the markdown table whose header line starts with `header_start`, as cell lists."""
    lines = README.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    rows = []
    for line in lines[start + 2:]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip().strip("`") for cell in line.strip("|").split("|")])
    return rows


def test_readme_opens_with_exactly_two_commands():
    block = re.search(r"\A# aloe\n\n```bash\n(.*?)\n```", README, re.S)
    assert block, "the README must open with the title and one fenced block of commands"
    commands = block.group(1).splitlines()
    assert len(commands) == 2
    assert commands[0].startswith("bash setup.sh && ") and "pytest" in commands[1]


def test_topic_table_matches_the_contract():
    rows = table_rows("| topic |")
    assert [(r[0], r[1]) for r in rows] == [(t.name, t.type_name) for t in CONTRACT]


def test_service_table_matches_the_code():
    rows = table_rows("| service |")
    assert [(r[0], r[1], r[2]) for r in rows] == [(s.name, s.type_name, s.server) for s in SERVICES]
