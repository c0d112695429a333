#!/usr/bin/env python3
# tests/fuzz/make_corpus.py: writes the seed corpora of tests/fuzz/corpus/ for every target but
# the JPEG seeds (make_jpeg_corpus.lua, histops' own encoder): PNGs of every colour type and bit
# depth (palette, tRNS, Adam7, ancillary chunks), safetensors files with each dtype and odd
# shapes, request bodies and raw HTTP requests, --set override lines, and run/registry records.
# Python standard library only; run once from the checkout: python3 tests/fuzz/make_corpus.py
# Not run by CI (the committed files are the corpus).
import json, os, struct, sys, zlib

top = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus")


def put(target, name, data):
    os.makedirs(os.path.join(top, target), exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(top, target, name), "wb") as f:
        f.write(data)


# ---------------------------------------------------------------- PNG
def chunk(kind, data):
    c = kind + data
    return struct.pack(">I", len(data)) + c + struct.pack(">I", zlib.crc32(c) & 0xFFFFFFFF)


CHANNELS = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}


def png(w, h, color, depth, interlace=0, extra=b"", plte=None, trns=None, level=6):
    ch = CHANNELS[color]
    bits = ch * depth

    def sample(x, y, c):
        return (x * 37 + y * 91 + c * 53) % (1 << depth)

    def packrow(xs, y):
        out, acc, nacc = bytearray(), 0, 0
        for x in xs:
            for c in range(ch):
                v = sample(x, y, c)
                if depth == 16:
                    out += struct.pack(">H", v)
                elif depth == 8:
                    out.append(v)
                else:
                    acc = (acc << depth) | v
                    nacc += depth
                    if nacc == 8:
                        out.append(acc)
                        acc, nacc = 0, 0
        if nacc:
            out.append(acc << (8 - nacc))
        return bytes(out)

    raw = bytearray()
    if interlace:
        passes = [(0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2)]
        for x0, y0, dx, dy in passes:
            xs = list(range(x0, w, dx))
            if not xs:
                continue
            for y in range(y0, h, dy):
                raw += b"\0" + packrow(xs, y)
    else:
        for y in range(h):
            raw += bytes([y % 5]) if False else b"\0"
            raw += packrow(range(w), y)
    del bits
    out = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, depth, color, 0, 0, interlace))
    if plte is not None:
        out += chunk(b"PLTE", plte)
    if trns is not None:
        out += chunk(b"tRNS", trns)
    out += extra
    out += chunk(b"IDAT", zlib.compress(bytes(raw), level))
    return out + chunk(b"IEND", b"")


pal = bytes(sum(([i * 60 % 256, i * 90 % 256, 255 - i * 60 % 256] for i in range(4)), []))
pngs = {
    "gray8_4x3.png": png(4, 3, 0, 8),
    "gray1_9x2.png": png(9, 2, 0, 1),
    "gray2_5x3.png": png(5, 3, 0, 2),
    "gray4_3x3_trns.png": png(3, 3, 0, 4, trns=struct.pack(">H", 3)),
    "gray16_3x2.png": png(3, 2, 0, 16),
    "graya8_2x2.png": png(2, 2, 4, 8),
    "graya16_2x2.png": png(2, 2, 4, 16),
    "rgb8_5x4.png": png(5, 4, 2, 8, extra=chunk(b"gAMA", struct.pack(">I", 45455)) + chunk(b"tEXt", b"Comment\0fuzz")),
    "rgb16_2x3_trns.png": png(2, 3, 2, 16, trns=struct.pack(">HHH", 1, 2, 3)),
    "rgba8_3x3.png": png(3, 3, 6, 8),
    "rgba16_2x2.png": png(2, 2, 6, 16),
    "palette2_4x4_trns.png": png(4, 4, 3, 2, plte=pal, trns=b"\x00\x80"),
    "palette8_3x2.png": png(3, 2, 3, 8, plte=pal),
    "rgb8_adam7_9x9.png": png(9, 9, 2, 8, interlace=1),
    "gray8_adam7_3x5.png": png(3, 5, 0, 8, interlace=1, level=0),
    "rgb8_1x1.png": png(1, 1, 2, 8),
}
for k, v in pngs.items():
    put("png", k, v)

# ---------------------------------------------------------------- safetensors
DT = {"F32": ("<f", 4), "F64": ("<d", 8), "I64": ("<q", 8), "I32": ("<i", 4), "U8": ("<B", 1), "U16": ("<H", 2)}


def st(tensors, meta=None, pad=True):
    header, data = {}, b""
    if meta is not None:
        header["__metadata__"] = meta
    for name, dtype, shape in tensors:
        n = 1
        for s in shape:
            n *= s
        fmt, size = DT.get(dtype, ("<B", 2))
        blob = b"".join(struct.pack(fmt, (i * 7) % 100) for i in range(n)) if dtype in DT else b"\0" * (n * size)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(blob)]}
        data += blob
    h = json.dumps(header).encode()
    if pad:
        h += b" " * (-len(h) % 8)
    return struct.pack("<Q", len(h)) + h + data


put("safetensors", "every_dtype.safetensors",
    st([("a.f32", "F32", [2, 3]), ("b.f64", "F64", [3]), ("c.i64", "I64", [1, 2]), ("d.i32", "I32", [2]),
        ("e.u8", "U8", [2, 2, 2]), ("f.u16", "U16", [4])], {"format": "pt", "note": "fuzz seed"}))
put("safetensors", "scalar_and_empty.safetensors", st([("scalar", "F32", []), ("empty", "F32", [0, 3])]))
put("safetensors", "eight_dims.safetensors", st([("t", "U8", [1, 2, 1, 1, 2, 1, 1, 2])]))
put("safetensors", "no_tensors.safetensors", st([], {"only": "metadata"}))
put("safetensors", "empty_header.safetensors", st([]))
put("safetensors", "f16_rejected.safetensors", st([("half", "F16", [2])]))
put("safetensors", "unpadded.safetensors", st([("w", "F32", [1])], pad=False))
put("safetensors", "model_like.safetensors",
    st([("conv.weight", "F32", [2, 1, 3, 3]), ("conv.bias", "F32", [2]), ("bn.num_batches_tracked", "I64", [])],
       {"histops": "{\"classes\":[\"neg\",\"pos\"]}", "pipeline": "[]"}))

# ---------------------------------------------------------------- HTTP bodies (httpd)
jpg_dir = os.path.join(top, "jpeg")
jpeg_small = open(os.path.join(jpg_dir, "rgb_q50.jpg"), "rb").read() if os.path.exists(os.path.join(jpg_dir, "rgb_q50.jpg")) else b""
p1, p2 = pngs["rgb8_5x4.png"], pngs["gray16_3x2.png"]


def multipart(boundary, parts):
    out = b""
    for headers, body in parts:
        out += b"--" + boundary + b"\r\n" + headers + b"\r\n\r\n" + body + b"\r\n"
    return out + b"--" + boundary + b"--\r\n"


mp = multipart(b"XyZ", [(b'Content-Disposition: form-data; name="file"; filename="a.png"\r\nContent-Type: image/png', p1),
                        (b'Content-Disposition: form-data; name="file"; filename="b.jpg"', jpeg_small),
                        (b'Content-Disposition: form-data; name="note"', b"not an image")])
mpq = multipart(b"a b;c", [(b'Content-Type: application/octet-stream', p2)])
put("httpd", "png_body", b"image/png\n" + p1)
put("httpd", "jpeg_body", b"image/jpeg; charset=binary\n" + jpeg_small)
put("httpd", "octet_sniffed", b"application/octet-stream\n" + p2)
put("httpd", "multipart_two_images", b"multipart/form-data; boundary=XyZ\n" + mp)
put("httpd", "multipart_quoted_boundary", b'multipart/form-data; boundary="a b;c"\n' + mpq)
put("httpd", "unsupported_type", b"text/plain\nhello")

# ---------------------------------------------------------------- raw HTTP requests (httpd_wire)
def req(method, path, headers=(), body=b""):
    h = "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\n" % (method, path)
    for k in headers:
        h += k + "\r\n"
    if body or method == "POST":
        h += "Content-Length: %d\r\n" % len(body)
    return h.encode() + b"\r\n" + body


put("httpd_wire", "get_healthz", req("GET", "/healthz"))
put("httpd_wire", "head_readyz", req("HEAD", "/readyz", ["Connection: close"]))
put("httpd_wire", "get_metrics", req("GET", "/metrics", ["Accept: text/plain"]))
put("httpd_wire", "get_models_keepalive_twice", req("GET", "/v1/models") + req("GET", "/healthz"))
put("httpd_wire", "post_predict_png", req("POST", "/v1/predict?format=json&top=3", ["Content-Type: image/png", "Accept: application/json"], p1))
put("httpd_wire", "post_segment_multipart", req("POST", "/v1/segment", ["Content-Type: multipart/form-data; boundary=XyZ"], mp))
put("httpd_wire", "post_ihc_jpeg", req("POST", "/v1/ihc?overlay=1", ["Content-Type: image/jpeg"], jpeg_small))
chunked = b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\n" + \
    b"%x\r\n" % len(p1) + p1 + b"\r\n0\r\n\r\n"
put("httpd_wire", "post_chunked", chunked)
put("httpd_wire", "post_too_large", b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: image/png\r\nContent-Length: 99999999999\r\n\r\n")
put("httpd_wire", "post_wrong_type", req("POST", "/v1/predict", ["Content-Type: text/html"], b"<html>"))
put("httpd_wire", "delete_predict", req("DELETE", "/v1/predict"))
put("httpd_wire", "get_unknown", req("GET", "/v1/../etc/passwd?x=%00"))
put("httpd_wire", "http10_get", b"GET /healthz HTTP/1.0\r\n\r\n")

# ---------------------------------------------------------------- --set overrides
for i, text in enumerate([
        "train.lr=0.01", "data.split.val=0.2\ntrain.epochs=3", "input.size={32, 32}\ninput.mean={0.5,0.5,0.5}",
        "policy.min_auc=0.9\npolicy.gate.metric=auc", "train.milestones={1,2,3}", "name=my-experiment",
        "data.splt.val=1", "seed=nil\nmodel=null", "train.optimizer=sgd\ntrain.momentum=0.95\ntrain.nesterov=true",
        "augment.hflip=false\naugment.hed_sigma=0.05", "train.early_stopping.patience=2", "bad override",
        "eval.window={256,256}\neval.stride=128", "data.path=/tmp/x=y"]):
    put("set_override", "set_%02d.txt" % i, text + "\n" if i % 2 else text)

# ---------------------------------------------------------------- run / registry records
SEP = "\n--8<--\n"
rid = "20260101-000000-abcdef"
code = {"commit": "a" * 40, "branch": "main", "detached": False, "unborn": False, "dirty": False}
metrics = {"accuracy": 0.91, "macro_f1": 0.9, "auc": 0.95, "accuracy_ci": {"lo": 0.88, "hi": 0.94, "value": 0.91}}
summary = {"id": rid, "experiment": "quickstart", "status": "finished", "start_time": 1767225600, "end_time": 1767225610,
           "heartbeat": 1767225610, "pid": 1234, "proc_start": 99, "host": "ci", "user": "fuzz", "task": "classification",
           "code": code, "metrics": {"accuracy": 0.91, "accuracy_ci": {"lo": 0.88, "hi": 0.94, "value": 0.91}}, "epochs": 2}
message = "run %s finished: quickstart\n\nhistops-run: %s\n" % (rid, json.dumps(summary))
run = dict(summary, params={"task": "classification", "seed": 1, "train": {"lr": 0.003, "epochs": 2}}, overrides=["train.epochs=2"],
           seed=1, metrics=metrics, history=[{"epoch": 1, "train_loss": 0.5}, {"epoch": 2, "train_loss": 0.4}],
           artifacts={"model.safetensors": "c" * 64}, dir="runs/quickstart/" + rid)
version = {"name": "m", "version": 1, "run": rid, "commit": "a" * 40, "branch": "main", "experiment": "quickstart",
           "data_fingerprint": "4379c0e56f51", "classes": ["neg", "pos"], "input": {"size": [64, 64], "channels": 3},
           "pipeline": [], "task": "classification", "metrics": metrics, "weights": "c" * 64, "size_bytes": 24920,
           "created": "2026-01-01T00:00:00Z", "user": "fuzz"}
alias = {"name": "m", "alias": "production", "version": 1, "who": "fuzz", "when": "2026-01-01T00:00:00Z",
         "why": "gate passed", "previous": None}
put("records", "finished_run", SEP.join([message, json.dumps(run, indent=1), json.dumps(version), json.dumps(alias)]))
running = dict(summary, status="running", end_time=None, pid=1, host="elsewhere")
put("records", "running_elsewhere", SEP.join(["run x running: q\n\nhistops-run: " + json.dumps(running), json.dumps(dict(run, status="running")), json.dumps(dict(version, version=2)), json.dumps(dict(alias, version=2, previous=1))]))
put("records", "no_summary_corrupt_json", SEP.join(["plain commit message", '{"id": "x", "status": ', '[]', '"str"']))
put("records", "failed_run", SEP.join(["histops-run: " + json.dumps(dict(summary, status="failed", error="boom")), json.dumps(dict(run, status="failed", error="boom", metrics={})), "{}", "{}"]))
pred = dict(run, data={"fingerprint": {"test": "f00d"}}, predictions={"y_true": [0, 1, 1, 0, 1, 0], "y_pred": [0, 1, 0, 0, 1, 1]})
put("records", "finished_run_predictions", SEP.join([message, json.dumps(pred), json.dumps(version), json.dumps(alias)]))
print("corpus written to", top)
