"""The worker's runner, used without its socket loop (as the inline and Dask executors use it)."""
import threading

from steps_lib import fail_if, square, whereami

from zart_nb import _serialization as ser
from zart_nb._executors.base import FUNCTION_MISSING, UNPICKLABLE_RESULT, WireTask
from zart_nb._executors.worker import Runner


def _task(fn, *args, task_id=1, send_fn=True, fn_id="f1"):
    return WireTask(task_id, fn_id, ser.dumps_by_value(fn) if send_fn else None, ser.dumps((args, {})),
                    "e-1", "k#0", 2)


def test_a_result_comes_back_pickled_with_a_preview():
    reply = Runner().run(_task(square.fn, 7))
    assert reply.ok and reply.task_id == 1
    assert ser.loads(reply.blob) == 49 and reply.preview == "49"
    assert reply.started <= reply.finished


def test_the_step_sees_its_context():
    reply = Runner().run(_task(whereami.fn))
    assert ser.loads(reply.blob)[:3] == ("e-1", "k#0", 2)


def test_an_error_is_reported_with_its_type_message_and_traceback():
    reply = Runner().run(_task(fail_if.fn, 3, 3))
    assert not reply.ok
    assert (reply.error_type, reply.error) == ("ValueError", "ValueError: bad value 3")
    assert "bad value 3" in reply.traceback
    assert isinstance(ser.loads(reply.blob), ValueError)


def test_a_known_function_is_not_sent_again_and_an_unknown_one_is_asked_for():
    runner = Runner()
    assert runner.run(_task(square.fn, 2)).ok
    assert ser.loads(runner.run(_task(square.fn, 3, task_id=2, send_fn=False)).blob) == 9
    missing = runner.run(_task(square.fn, 3, task_id=3, send_fn=False, fn_id="other"))
    assert missing.error_type == FUNCTION_MISSING


def _returns_a_lock():
    return threading.Lock()


def test_an_unpicklable_result_is_named_as_such():
    reply = Runner().run(_task(_returns_a_lock))
    assert reply.error_type == UNPICKLABLE_RESULT and "lock" in reply.error
