"""What a step prints and what its child processes write to the same descriptors are journaled (and
shown live) in the order written: a print after ``subprocess.run`` comes after the run's output."""
import gc
import os
import subprocess
import sys
import threading

import zart_nb as zart
from zart_nb._executors import capture, fdcapture

PROGRAM = r"""
import os, subprocess, sys
import zart_nb as zart

@zart.step("make")
def make():
    print("building")
    subprocess.run(["echo", "compiler output"], check=True)
    print("built")
    os.system("echo warning from the linker >&2")
    print("linked", file=sys.stderr)
    return "made"

@zart.workflow("build")
def build(_):
    return make()

print("result", zart.run(build, None, execution_id="build-1", journal="j.duckdb", workers=1), flush=True)
"""


def test_a_print_after_a_child_process_comes_after_its_output(tmp_path):
    proc = subprocess.run([sys.executable, "-c", PROGRAM], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["[make#0] building", "[make#0] compiler output", "[make#0] built",
                                        "result made"]
    assert proc.stderr.splitlines() == ["[make#0] warning from the linker", "[make#0] linked"]
    reader = zart.journal(tmp_path / "j.duckdb")
    try:
        (step,) = reader.list_steps("build-1")
    finally:
        reader.close()
    assert step.log == "building\ncompiler output\nbuilt\nwarning from the linker\nlinked\n"


def test_a_print_from_inside_a_catch_up_does_not_wait_for_itself():
    # A finalizer run by a collection while the catch-up holds the lock may print: that print's own
    # catch-up is skipped, not waited for (it would wait forever on the lock its own thread holds).
    descriptors = fdcapture.FdCapture()
    stream = fdcapture._Stream("stdout", 1, -1)  # a real file, not put behind descriptor 1
    descriptors._streams = (stream,)
    received = []

    def sink(name, text):
        descriptors._catch_up()  # as the finalizer's print would
        received.append(text)

    descriptors.begin(capture.Capture(sink))
    os.write(stream.write, b"from a child\n")
    caller = threading.Thread(target=descriptors._catch_up, daemon=True)
    try:
        caller.start()
        caller.join(30)
        assert not caller.is_alive()
        assert received == ["from a child\n"]
    finally:
        os.close(stream.write)
        os.close(stream.read)


def test_a_print_during_a_collection_inside_a_capture_does_not_hang():
    # A collection may start while a capture holds its lock (it allocates), and run a finalizer that
    # prints to the same capture, from the same thread: it must not wait for itself.
    captured = capture.Capture(lambda stream, text: None)
    reentered = []

    inside = {capture.Capture.write.__code__, capture.Capture._start.__code__}

    def on_collection(phase, _info):
        if phase != "start" or threading.current_thread() is not writer:
            return
        frame = sys._getframe(1)
        while frame is not None and frame.f_code not in inside:
            frame = frame.f_back
        if frame is not None:  # the collection started inside the capture (its lock held, at times)
            reentered.append(frame.f_code.co_name)
            captured.write("stdout", "from a finalizer\n")

    def write_lots():
        for i in range(5000):  # past 2 * TAIL: the tail is trimmed (a new list) under the lock
            captured.write("stdout", f"{i:05d} " + "x" * 100 + "\n")

    writer = threading.Thread(target=write_lots, daemon=True)
    threshold = gc.get_threshold()
    gc.callbacks.append(on_collection)
    gc.set_threshold(1)  # a collection at every allocation of a container
    try:
        writer.start()
        writer.join(30)
    finally:
        gc.set_threshold(*threshold)
        gc.callbacks.remove(on_collection)
    assert not writer.is_alive()
    assert reentered[0] == "_start" and "write" in reentered
    assert (captured.close() or "").endswith("04999 " + "x" * 100 + "\n")
