"""What the PyTorch reference scripts (tools/torch_*.py) share: writing tensors as a safetensors
file (F32, the header padded to 8 bytes, through a temporary file and a rename)."""
import json
import os
import struct


def write_safetensors(path, tensors, meta=None):
    header, blobs, off = ({"__metadata__": meta} if meta else {}), [], 0
    for name, t in tensors.items():
        b = t.detach().contiguous().float().numpy().tobytes()
        header[name] = {"dtype": "F32", "shape": list(t.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    os.replace(tmp, path)
