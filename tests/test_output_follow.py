"""`zart show --output --follow` past what an attempt's output keeps (its first 16 KiB and last 64 KiB):
the text it reads is no longer only appended to, and the follower still shows every line once, in order
(it stopped showing anything once the kept window was full)."""
from zart_nb._executors import capture


def _follow(batches: list[str]) -> list[str]:
    """What a follower shows reading the attempt's output after each batch is printed."""
    captured = capture.Capture(None)
    start, seen, shown = 0, "", []
    for batch in batches:
        captured.write("stdout", batch)
        lines, start, seen = capture.unseen(captured.close() or "", start, seen)
        shown.extend(lines.splitlines())
    return shown


def _lines(first: int, last: int) -> str:
    return "".join(f"line {i:06d}\n" for i in range(first, last))


def test_a_follower_sees_every_line_once_in_order_past_the_kept_window():
    batches = [_lines(i, i + 100) for i in range(0, 30_000, 100)]  # 360 KiB, 100 lines a poll
    assert _follow(batches) == _lines(0, 30_000).splitlines()


def test_a_follower_that_fell_behind_resumes_at_the_kept_tail():
    shown = _follow([_lines(0, 100) + "unfinished", " line\n", _lines(100, 20_100), _lines(20_100, 20_200)])
    assert shown[:101] == _lines(0, 100).splitlines() + ["unfinished line"]
    notes = [line for line in shown if line.startswith("[zart: ")]  # the rest of the head, then the note
    assert len(notes) == 1 and notes[0].endswith("characters of output skipped; the first 16 KiB and the last "
                                                  "64 KiB are kept]")
    numbers = [int(line.split()[1]) for line in shown[101:] if line not in notes]
    assert numbers == sorted(set(numbers))  # in order, none twice
    assert numbers[:1264] == list(range(100, 1364))  # the rest of the head (16 KiB, whole lines)
    assert numbers[-100:] == list(range(20_100, 20_200))
    assert 6000 < len(numbers) < 7000  # the head, the kept tail (64 KiB of 12-character lines), the last poll


def test_a_follower_waits_for_a_line_to_end():
    assert capture.unseen("done\nhalf", 0, "") == ("done\n", 5, "done\n")
    assert capture.unseen("done\nhalf", 5, "done\n") == ("", 5, "done\n")
    assert capture.unseen("done\nhalf a line\n", 5, "done\n") == ("half a line\n", 17, "done\nhalf a line\n")
