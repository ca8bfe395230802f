# t/web-cdp.py STEP...: drives headless Chromium over the DevTools protocol on
# a pipe (--remote-debugging-pipe: no port, no websocket), one page kept
# loaded throughout. Steps:
#   open URL      load URL in a new page
#   wait JS       poll until the expression is true (10 s)
#   eval JS       print the expression's value (JSON) on a line
#   shot FILE     save a PNG screenshot of the page
#   run CMD       run a shell command, failing if it fails
import base64, json, os, select, subprocess, sys, time

CHROMIUM = os.environ.get("CHROMIUM", "chromium")

class Browser:
    def __init__(self, profile):
        to_c, self.w = os.pipe()
        self.r, from_c = os.pipe()
        def fds():
            a, b = os.dup(to_c), os.dup(from_c)
            os.dup2(a, 3)
            os.dup2(b, 4)
        argv = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                "--hide-scrollbars", "--force-device-scale-factor=1", "--window-size=900,600",
                "--user-data-dir=" + profile, "--remote-debugging-pipe", "about:blank"]
        self.p = subprocess.Popen(argv, preexec_fn=fds, close_fds=False,
                                  stdout=subprocess.DEVNULL, stderr=open(profile + ".log", "w"))
        os.close(to_c)
        os.close(from_c)
        self.buf, self.id, self.session = b"", 0, None

    def call(self, method, params=None, session=True, timeout=30):
        self.id += 1
        msg = {"id": self.id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self.w, json.dumps(msg).encode() + b"\0")
        deadline = time.time() + timeout
        while True:
            while b"\0" not in self.buf:
                left = deadline - time.time()
                if left <= 0 or not select.select([self.r], [], [], left)[0]:
                    raise SystemExit("cdp: %s: no answer in %d s" % (method, timeout))
                chunk = os.read(self.r, 1 << 20)
                if not chunk:
                    raise SystemExit("cdp: chromium exited")
                self.buf += chunk
            line, self.buf = self.buf.split(b"\0", 1)
            m = json.loads(line)
            if m.get("id") == self.id:
                if "error" in m:
                    raise SystemExit("cdp: %s: %s" % (method, m["error"]))
                return m["result"]

    def eval(self, expr):
        r = self.call("Runtime.evaluate", {"expression": expr, "returnByValue": True, "awaitPromise": True})
        if "exceptionDetails" in r:
            raise SystemExit("cdp: %s: %s" % (expr, r["exceptionDetails"]))
        return r["result"].get("value")

    def close(self):
        try:
            self.call("Browser.close", session=False, timeout=5)
        except SystemExit:
            pass
        try:
            self.p.wait(10)
        except subprocess.TimeoutExpired:
            self.p.kill()

def main(args):
    b = Browser(os.environ.get("CDP_PROFILE", "/tmp/cdp-profile"))
    try:
        while args:
            step, arg, args = args[0], args[1], args[2:]
            if step == "open":
                t = b.call("Target.createTarget", {"url": arg}, session=False)["targetId"]
                b.session = b.call("Target.attachToTarget", {"targetId": t, "flatten": True}, session=False)["sessionId"]
            elif step == "wait":
                deadline = time.time() + 10
                while not b.eval(arg):
                    if time.time() > deadline:
                        raise SystemExit("cdp: timed out waiting for " + arg)
                    time.sleep(0.1)
            elif step == "eval":
                print(json.dumps(b.eval(arg)), flush=True)
            elif step == "shot":
                png = b.call("Page.captureScreenshot", {"format": "png"})["data"]
                with open(arg, "wb") as f:
                    f.write(base64.b64decode(png))
            elif step == "run":
                subprocess.run(arg, shell=True, check=True)
            else:
                raise SystemExit("cdp: unknown step " + step)
    finally:
        b.close()

main(sys.argv[1:])
