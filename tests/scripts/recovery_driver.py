"""A driver for max_recoveries tests: runs a workflow whose step marks its start then stalls, until it is
killed. ``recovery_driver.py JOURNAL WORKDIR EXECUTION_ID MAX_RECOVERIES``; prints how the run ended."""
import os
import sys
import time

import zart_nb as zart


@zart.step("stall")
def stall(workdir: str) -> str:
    fd = os.open(os.path.join(workdir, "started.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.write(fd, b"started\n")
    os.close(fd)
    time.sleep(300)
    return "done"


def main() -> None:
    journal, workdir, execution_id, limit = sys.argv[1:5]

    @zart.workflow("recovering", max_recoveries=int(limit))
    def recovering(path):
        return stall(path)

    try:
        zart.run(recovering, workdir, execution_id=execution_id, journal=journal, workers=1, display=False)
    except zart.ZartError as exc:
        print(f"{type(exc).__name__}: {exc}", flush=True)
        sys.exit(3)


if __name__ == "__main__":
    main()
