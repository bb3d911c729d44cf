import sys, time, json
from noded.contract.client import Client
from noded.dataplane.session import SessionIO, request_attach
toml = 'inputs = ["go"]\noutputs = ["probe.out"]\n[[nodes]]\nid = "probe"\nclass = "probe"\ninputs = ["input.go"]\n'
from noded.contract.paths import DEFAULT_SOCKET
c = Client(DEFAULT_SOCKET)
info = c.request("create", text=toml, filename="p.toml")
sid = info["sid"]
for _ in range(100):
    if c.request("show", sid=sid)["state"] == "ready": break
    time.sleep(0.2)
io = SessionIO(request_attach(sid))
io.send("go", {"op": "whoami"})
t = time.monotonic()
msg = io.receive(timeout=15)
print("got", msg, time.monotonic() - t, io.reader_slot)
io.close()
print(c.request("stop", sid=sid, wait=True)["state"])
import subprocess
print(subprocess.run(["journalctl", "--no-pager", "-n", "40", "-o", "cat"], capture_output=True, text=True).stdout[-4000:])
