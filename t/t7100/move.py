# move.py LIB NODE: Python moving itself with libbproc through ctypes;
# prints the call's result, errno and the host it is on after.
import ctypes
import socket
import sys

lib = ctypes.CDLL(sys.argv[1], use_errno=True)
r = lib.bproc_move(int(sys.argv[2]))
print(r, ctypes.get_errno() if r < 0 else 0, socket.gethostname())
