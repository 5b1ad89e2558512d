"""The worker's runner, used without its socket loop (as the inline and Dask executors use it)."""
import os
import threading

import pytest
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


# --- a worker process: revoking the attempts it holds and has not started ------------------------


def _collect(worker, want_ids, revoke_answers, answered=None, revoked=None, deadline=30.0):
    """Read a worker's replies until every id in ``want_ids`` is answered or revoked and
    ``revoke_answers`` revoke answers came; returns ({task id: reply}, [revoked id lists])."""
    import pickle
    import time

    from zart_nb._executors.base import WireOutput, WireReply, WireRevoked

    answered = {} if answered is None else answered
    revoked = [] if revoked is None else revoked
    end = time.monotonic() + deadline
    while set(want_ids) - set(answered) - {i for ids in revoked for i in ids} or len(revoked) < revoke_answers:
        assert time.monotonic() < end, f"the worker answered {sorted(answered)}, revoked {revoked}"
        if not worker.conn.poll(max(0.0, end - time.monotonic())):
            continue
        message = pickle.loads(worker.conn.recv_bytes())
        for item in message or []:
            if type(item) is WireRevoked:
                revoked.append(item.task_ids)
            elif type(item) is not WireOutput:
                reply = WireReply(*item)
                assert reply.task_id not in answered, f"task {reply.task_id} answered twice"
                answered[reply.task_id] = reply
    return answered, revoked


def _run(worker, tasks):
    import pickle

    worker.conn.send_bytes(pickle.dumps(("run", [tuple(task) for task in tasks]), 5))


def _revoke(worker, task_ids):
    import pickle

    worker.control.send_bytes(pickle.dumps(("revoke", list(task_ids)), 5))


def test_a_worker_gives_back_what_it_holds_behind_a_running_step(tmp_path):
    from steps_lib import quick, wait_for_file

    from zart_nb._executors.local import _Worker

    worker = _Worker(0, None)
    try:
        gate = tmp_path / "gate"
        _run(worker, [_task(wait_for_file.fn, str(gate), 30.0, task_id=1, fn_id="wait")]
             + [_task(quick.fn, i, task_id=i, fn_id="quick", send_fn=i == 2) for i in range(2, 7)])
        _revoke(worker, [2, 3])  # answered while the first step still waits for the gate
        answered, revoked = _collect(worker, [], 1)
        assert revoked == [[2, 3]] and not answered
        gate.touch()
        answered, revoked = _collect(worker, [1, 4, 5, 6], 0)
        assert ser.loads(answered[1].blob) == "released"
        # task 4 came without its function, which travelled with the revoked task 2: kept for it
        assert {i: ser.loads(answered[i].blob) for i in (4, 5, 6)} == {4: 5, 5: 6, 6: 7}
    finally:
        worker.kill()


def test_an_attempt_is_either_run_or_revoked_never_both(tmp_path):
    """Revokes that reach the worker just as it takes the next attempt: each attempt is answered
    once or revoked once, and one revoked and sent again runs once."""
    from steps_lib import calls, nap

    from zart_nb._executors.local import _Worker

    worker = _Worker(0, None)
    try:
        ids = list(range(1, 301))
        outcomes = {"raced": 0}
        for round_, start in enumerate(range(0, len(ids), 20)):
            batch = ids[start:start + 20]
            _run(worker, [_task(nap.fn, i, 0.001, str(tmp_path), task_id=i, fn_id="nap", send_fn=i == 1)
                          for i in batch])
            answered, revoked = _collect(worker, batch[:round_ % 10 + 1], 0)  # then revoke the rest
            _revoke(worker, batch[round_ % 10 + 1:])
            _collect(worker, batch, 1, answered, revoked)
            taken = revoked[0]
            assert not set(taken) & set(answered), "an attempt both ran and was revoked"
            assert sorted(set(taken) | set(answered)) == batch
            outcomes["raced"] += len(set(batch[round_ % 10 + 1:]) & set(answered))
            if taken:  # revoked attempts can be sent again (here to the same worker)
                _run(worker, [_task(nap.fn, i, 0.0, str(tmp_path), task_id=i, fn_id="nap", send_fn=False)
                              for i in taken])
                _collect(worker, taken, 0, answered)
            assert {i: ser.loads(answered[i].blob) for i in batch} == {i: -i for i in batch}
        assert sorted(calls(tmp_path)) == sorted(f"nap:{i}" for i in ids), "an attempt ran twice or never"
        assert outcomes["raced"], "no revoke reached the worker after it had started a task it names"
    finally:
        worker.kill()


def test_the_workers_connection_frames_messages_as_multiprocessing_does():
    import socket
    import threading
    from multiprocessing.connection import Connection

    from zart_nb._executors.wire import FdConnection

    driver_sock, worker_sock = socket.socketpair()
    driver, worker = Connection(driver_sock.detach()), FdConnection(worker_sock.detach())
    messages = [b"", b"x", bytes(range(256)) * 80, b"y" * 1_000_000]  # one write, two writes, many reads
    assert not worker.poll(0)
    sender = threading.Thread(target=lambda: [driver.send_bytes(m) for m in messages])
    sender.start()
    assert [worker.recv_bytes() for _ in messages] == messages
    sender.join()
    sender = threading.Thread(target=lambda: [worker.send_bytes(m) for m in messages])
    sender.start()
    assert [driver.recv_bytes() for _ in messages] == messages
    sender.join()
    driver.send_bytes(b"last")
    assert worker.poll(5) and worker.recv_bytes() == b"last"
    driver.close()
    assert worker.poll(5)  # the end of the stream is news too
    with pytest.raises(EOFError):
        worker.recv_bytes()
    worker.close()


def test_wait_reports_the_connections_with_news_and_a_closed_one_fails_its_reads_not_another_file():
    import socket

    from zart_nb._executors.wire import FdConnection, wait

    pairs = [socket.socketpair() for _ in range(3)]
    near = [FdConnection(a.detach()) for a, _ in pairs]
    far = [FdConnection(b.detach()) for _, b in pairs]
    wake_r, wake_w = os.pipe()
    try:
        assert wait([*near, wake_r], 0) == []
        far[1].send_bytes(b"one")
        os.write(wake_w, b"x")
        assert sorted(map(id, wait([*near, wake_r], 5))) == sorted(map(id, [near[1], wake_r]))
        assert near[1].recv_bytes() == b"one"
        far[2].close()
        assert wait(near, 5) == [near[2]]  # the end of a stream is news
        with pytest.raises(EOFError):
            near[2].recv_bytes()
        near[0].close()
        near[0].close()  # once only: a second close must not close a descriptor reused meanwhile
        reused = os.open(os.devnull, os.O_RDONLY)  # likely takes the number near[0] had
        try:
            assert wait([near[0]], 0) == []  # closed: left out, never waited on
            with pytest.raises(OSError):
                near[0].recv_bytes()
            assert os.fstat(reused)  # still open
        finally:
            os.close(reused)
    finally:
        for conn in (*near[1:], *far[:2]):
            conn.close()
        os.close(wake_r)
        os.close(wake_w)
