# midloop.py: spins in a Python loop until its pid changes (it was restored
# elsewhere), then checks that the interpreter's state survived.
import hashlib, os, sys

pid0 = os.getpid()
table = {str(k): k * k for k in range(50000)}
h = hashlib.sha256()
i = 0
print("READY", pid0, flush=True)
while os.getpid() == pid0:
    i += 1
    h.update(i.to_bytes(8, "little"))
h2 = hashlib.sha256()
for k in range(1, i + 1):
    h2.update(k.to_bytes(8, "little"))
ok = h.digest() == h2.digest() and all(table[str(k)] == k * k for k in range(50000))
big = [bytes(1000) for _ in range(10000)]  # the heap still grows
print("restored after", i, "iterations")
print("VERDICT", "PASS" if ok and len(big) == 10000 else "FAIL", flush=True)
