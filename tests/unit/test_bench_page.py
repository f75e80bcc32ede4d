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


def test_the_overhead_section_is_marked_so_it_can_be_re_run_alone():
    from tools.bench import overhead_section

    text = overhead_section(
        "## Framework and gateway overhead\n\nfigures",
        login={"n": 10, "rps": 1.25, "p50": 0.5, "p99": 0.9},
    )
    assert text.startswith(f"{MARK.format('bench_overhead')}\n## Framework and gateway overhead")
    assert "## Login" in text and "**1.2 logins/s**" in text
    old = page(("bench_overhead", "## Framework\n\nold\n\n## Login\n\nold"), ("bench_b", "## B\n"))
    new = _replace(old, {"bench_overhead": text + "\n"})
    assert new.count("## Login") == 1 and "figures" in new and "## B" in new
