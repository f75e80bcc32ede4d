"""Exec a server on listening sockets the supervisor owns: `python -I -S _serve.py FD[,FD] ARGV`.

Run as a script (not `-m`), so it imports nothing but `fcntl`, `os` and `sys`. It moves the
inherited listening sockets to file descriptors 3, 4, ... and sets `LISTEN_FDS=<n>` and
`LISTEN_PID=<pid>` (systemd's socket-activation protocol, which gunicorn, functions-framework's
server, honours), then execs ARGV in the same process, so the pid the protocol checks stays.
The supervisor keeps a deployment's socket open across restarts: connections made while it
restarts wait in the backlog instead of being refused, and an old and a new process can serve
the same port while one replaces the other (live reload).
"""

import fcntl
import os
import sys

if __name__ == "__main__":
    given = [int(fd) for fd in sys.argv[1].split(",")]
    high = [fcntl.fcntl(fd, fcntl.F_DUPFD, 100) for fd in given]  # out of the way of 3, 4, ...
    for fd in given:
        os.close(fd)
    for n, fd in enumerate(high):
        os.dup2(fd, 3 + n)  # inheritable by default
        os.close(fd)
    os.environ["LISTEN_FDS"] = str(len(given))
    os.environ["LISTEN_PID"] = str(os.getpid())
    os.execv(sys.argv[2], sys.argv[2:])
