"""Imported for its effect: the process exits when its stdin reaches EOF. A test holds the pipe
open while it needs the process, so a test that dies (and closes it) leaves nothing behind."""

import os
import sys
import threading


def _exit_with_the_test() -> None:
    while sys.stdin.buffer.read(65536):
        pass
    os._exit(0)


threading.Thread(target=_exit_with_the_test, daemon=True).start()
