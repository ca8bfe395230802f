# t/web-get.py URL [HEADER: VALUE...]: GET URL, the body on stdout; exits 0
# only for 200, else says "HTTP CODE" (and the body) on stderr.
import sys, urllib.error, urllib.request

req = urllib.request.Request(sys.argv[1], headers=dict(h.split(": ", 1) for h in sys.argv[2:]))
try:
    with urllib.request.urlopen(req, timeout=10) as r:
        sys.stdout.write(r.read().decode())
except urllib.error.HTTPError as e:
    sys.stderr.write("HTTP %d %s\n" % (e.code, e.read().decode()))
    sys.exit(1)
except OSError as e:
    sys.stderr.write("%s: %s\n" % (sys.argv[1], e))
    sys.exit(1)
