"""Progress (prmkit.progress): plain lines every 5% where no terminal shows a live bar."""

from prmkit.progress import Bar


def test_without_a_terminal_progress_is_a_plain_line_every_five_percent(capsys):
    bar = Bar(True, "PRM", 200)
    for step in range(200):
        bar.advance(f"PRM  loss {1 / (step + 1):.3f}")
    bar.stop()
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 21  # the first step, then every 5% (10 steps) up to the last
    assert lines[0].startswith("PRM  loss 1.000: 1/200 (0%)")
    assert lines[-1].startswith("PRM  loss 0.005: 200/200 (100%)")


def test_a_disabled_bar_prints_nothing(capsys):
    bar = Bar(False, "x", 10)
    for _ in range(10):
        bar.advance()
    assert capsys.readouterr().out == ""
