#!/usr/bin/env python3
"""Real-client interop: tuspy (``tusclient``) against a pre-allocated Roughy upload URL.

Usage: python3 tuspy_resume.py <upload_url> <api_key> <file>

1. An uploader built on the URL (tuspy HEADs it for the offset) sends 64 KiB chunks with
   ``upload_chunk()`` until ~40 % of the file is stored.
2. The client is "killed" mid-chunk: one more PATCH sends its headers and half its body, then
   the connection is closed (what a process dying mid-PATCH looks like on the wire).
3. A NEW uploader on the same URL must HEAD the server (``get_offset``), resume from the offset
   it reports, and finish with ``upload()``.

Every request tuspy sends goes through ``requests.Session.request``, which is wrapped here to
record method, Upload-Offset and the answer. Prints exactly one JSON line on stdout:
``{"ok": true, "resumed_from": N, "patches": K, ...}`` (exit 0) or
``{"ok": false, "error": "..."}`` (exit 1).
Driven by tests/contract/interop.rs. Install once: pip install -r tests/interop/requirements.txt
"""

import http.client
import json
import os
import signal
import sys
import urllib.parse

CHUNK_SIZE = 64 * 1024
INTERRUPT_AT = 0.4
OVERALL_TIMEOUT_S = 60

TRACE = []


def finish(result):
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()
    sys.exit(0 if result.get("ok") else 1)


def fail(error, **extra):
    finish(dict(ok=False, error=str(error), **extra))


def on_timeout(_signum, _frame):
    fail("timed out after %d s" % OVERALL_TIMEOUT_S, trace=TRACE)


def install_recorder(requests_module, phase):
    """Wraps requests.Session.request so every tuspy request/answer lands in TRACE."""
    original = requests_module.sessions.Session.request

    def recording(self, method, url, *args, **kwargs):
        headers = {k.lower(): v for k, v in (kwargs.get("headers") or {}).items()}
        data = kwargs.get("data")
        entry = {
            "phase": phase[0],
            "method": method.upper(),
            "upload_offset": headers.get("upload-offset"),
            "tus_resumable": headers.get("tus-resumable"),
            "body_len": len(data) if isinstance(data, (bytes, bytearray)) else None,
        }
        TRACE.append(entry)
        resp = original(self, method, url, *args, **kwargs)
        entry["status"] = resp.status_code
        entry["answer_offset"] = resp.headers.get("Upload-Offset")
        entry["answer_length"] = resp.headers.get("Upload-Length")
        if resp.status_code >= 300:
            entry["answer_body"] = resp.text[:500]
        return resp

    requests_module.sessions.Session.request = recording


def torn_patch(upload_url, api_key, offset, body):
    """Sends a PATCH whose body is cut off: headers promise len(body)*2 bytes, half is sent."""
    u = urllib.parse.urlsplit(upload_url)
    conn_cls = http.client.HTTPSConnection if u.scheme == "https" else http.client.HTTPConnection
    conn = conn_cls(u.hostname, u.port, timeout=10)
    path = u.path + ("?" + u.query if u.query else "")
    conn.putrequest("PATCH", path, skip_accept_encoding=True)
    conn.putheader("Authorization", "Bearer " + api_key)
    conn.putheader("Tus-Resumable", "1.0.0")
    conn.putheader("Content-Type", "application/offset+octet-stream")
    conn.putheader("Upload-Offset", str(offset))
    conn.putheader("Content-Length", str(len(body) * 2))
    conn.endheaders()
    conn.send(body)
    conn.close()
    TRACE.append(
        {"phase": "torn", "method": "PATCH", "upload_offset": str(offset), "body_len": len(body),
         "declared_len": len(body) * 2, "status": None}
    )


def main():
    if len(sys.argv) != 4:
        fail("usage: python3 tuspy_resume.py <upload_url> <api_key> <file>")
    upload_url, api_key, path = sys.argv[1:]
    try:
        import requests
        from tusclient import client as tus_client
    except ImportError as e:
        fail("cannot import tusclient (run `pip install -r tests/interop/requirements.txt`): %s" % e)

    signal.signal(signal.SIGALRM, on_timeout)
    signal.alarm(OVERALL_TIMEOUT_S)

    phase = ["run1"]
    install_recorder(requests, phase)
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        data = f.read()

    # The endpoint given to TusClient is never used for creation (the URL is pre-set).
    client = tus_client.TusClient(upload_url, headers={"Authorization": "Bearer " + api_key})

    # Run 1: a few chunks, until ~40 % is stored.
    up1 = client.uploader(path, url=upload_url, chunk_size=CHUNK_SIZE)
    if up1.offset != 0:
        raise RuntimeError("fresh upload: HEAD reported offset %d, expected 0" % up1.offset)
    while up1.offset < size * INTERRUPT_AT:
        up1.upload_chunk()
    acked1 = up1.offset
    patches1 = sum(1 for e in TRACE if e["phase"] == "run1" and e["method"] == "PATCH")

    # The process "dies" mid-chunk: half of the next chunk goes out, then the socket closes.
    torn = data[acked1 : acked1 + CHUNK_SIZE // 2]
    torn_patch(upload_url, api_key, acked1, torn)

    # Run 2: a brand-new uploader on the same URL; tuspy HEADs it in the constructor.
    phase[0] = "run2"
    up2 = client.uploader(path, url=upload_url, chunk_size=CHUNK_SIZE, retries=3, retry_delay=0.2)
    run2_first = [e for e in TRACE if e["phase"] == "run2"]
    if not run2_first or run2_first[0]["method"] != "HEAD":
        raise RuntimeError("run 2 did not start with HEAD")
    head = run2_first[0]
    if head["status"] != 200:
        raise RuntimeError("run 2 HEAD answered %s" % head["status"])
    head_offset = int(head["answer_offset"])
    if head["answer_length"] is None or int(head["answer_length"]) != size:
        raise RuntimeError("HEAD Upload-Length %s != file size %d" % (head["answer_length"], size))
    if up2.offset != head_offset:
        raise RuntimeError("uploader offset %d != HEAD offset %d" % (up2.offset, head_offset))
    up2.upload()
    signal.alarm(0)

    run2 = [e for e in TRACE if e["phase"] == "run2"]
    patches2 = [e for e in run2 if e["method"] == "PATCH"]
    if not patches2:
        raise RuntimeError("run 2 sent no PATCH")
    resumed_from = int(patches2[0]["upload_offset"])
    if resumed_from <= 0:
        raise RuntimeError("run 2 first PATCH at offset %d, not > 0" % resumed_from)
    if resumed_from != head_offset:
        raise RuntimeError("run 2 first PATCH at %d but HEAD said %d" % (resumed_from, head_offset))
    if head_offset < acked1:
        raise RuntimeError("HEAD offset %d < last acknowledged offset %d" % (head_offset, acked1))
    if head_offset > acked1 + len(torn):
        raise RuntimeError(
            "HEAD offset %d > bytes ever sent (%d)" % (head_offset, acked1 + len(torn))
        )
    last = patches2[-1]
    if last["status"] != 204 or last["answer_offset"] is None or int(last["answer_offset"]) != size:
        raise RuntimeError("last PATCH answer %r is not 204 at %d" % (last, size))
    if up2.offset != size:
        raise RuntimeError("uploader ended at %d, not %d" % (up2.offset, size))

    finish(
        {
            "ok": True,
            "resumed_from": resumed_from,
            "patches": len(patches2),
            "size": size,
            "run1_patches": patches1,
            "run1_last_acked": acked1,
            "torn_patch_bytes_sent": len(torn),
            "head_offset": head_offset,
            "head_offsets_run2": [int(e["answer_offset"]) for e in run2 if e["method"] == "HEAD"
                                  and e.get("answer_offset") is not None],
            "non_2xx_in_run2": [e for e in run2 if e.get("status") not in (200, 204)],
        }
    )


if __name__ == "__main__":
    try:
        main()
    except SystemExit:
        raise
    except BaseException as e:  # noqa: BLE001 - every failure becomes the JSON error line
        fail("%s: %s" % (type(e).__name__, e), trace=TRACE)
