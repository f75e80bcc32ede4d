"""`tools/bench.py --only`: re-run sections replace theirs in docs/benchmarks.md, in place."""

from __future__ import annotations

from tools.bench import MARK, _replace


def page(*sections: tuple[str, str]) -> str:
    return "# Benchmarks\n\nintro\n" + "".join(f"{MARK.format(s)}\n{t}\n" for s, t in sections)


def test_a_re_run_section_takes_the_place_of_its_old_text_and_nothing_else_moves():
    old = page(("bench_a", "## A\n\nold a"), ("bench_b", "## B\n\nold b"), ("bench_c", "## C\n"))
    new = _replace(old, {"bench_b": f"{MARK.format('bench_b')}\n## B\n\nnew b\n"})
    assert new == page(
        ("bench_a", "## A\n\nold a"), ("bench_b", "## B\n\nnew b"), ("bench_c", "## C\n")
    )


def test_a_section_the_page_does_not_have_is_appended():
    old = page(("bench_a", "## A\n"))
    new = _replace(old, {"bench_z": f"{MARK.format('bench_z')}\n## Z\n"})
    assert new == old + f"{MARK.format('bench_z')}\n## Z\n\n"
