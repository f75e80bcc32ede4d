"""Exec a server on a listening socket the supervisor owns: `python -I -S _serve.py FD ARGV...`.

Run as a script (not `-m`), so it imports nothing but `os` and `sys`. It moves the inherited
listening socket FD to file descriptor 3 and sets `LISTEN_FDS=1` / `LISTEN_PID=<own pid>`
(systemd's socket-activation protocol, which gunicorn - functions-framework's server - honours),
then execs ARGV in the same process, so the pid (and the protocol's check of it) stays the same.
The supervisor keeps the socket open across restarts: connections made while a deployment
restarts wait in the socket's backlog instead of being refused, and an old and a new process
can serve the same port while one replaces the other.
"""

import os
import sys

if __name__ == "__main__":
    fd = int(sys.argv[1])
    if fd != 3:
        os.dup2(fd, 3)  # inheritable by default
        os.close(fd)
    os.environ["LISTEN_FDS"] = "1"
    os.environ["LISTEN_PID"] = str(os.getpid())
    os.execv(sys.argv[2], sys.argv[2:])
