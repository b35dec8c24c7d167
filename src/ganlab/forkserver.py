"""Imported by the forkserver of ganlab's ``gpus`` launcher only (last of its ``PRELOAD`` list), never by a
process that does anything else: importing it makes the process end at once when it exits.

The server's only work is to fork job processes; at its exit (when the sweep's main process has ended)
an ordinary interpreter shutdown would tear down torch, Lightning and thousands of modules, seconds of CPU
during which the server still holds the sweep's stdout and stderr (a pipe reading the sweep's output,
``ganlab.train -m ... | tee log``, waits for them). Job processes forked from it end with ``os._exit``
(multiprocessing's forkserver) and never run this handler. Not under ``hydra_plugins``: Hydra's plugin
scan imports every module there, in the main process too.
"""

import atexit
import os
import sys


def _exit_now() -> None:
    """Flush what the server printed and end it without the shutdown of its imported modules."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


atexit.register(_exit_now)  # run first: atexit handlers run last registered, first
