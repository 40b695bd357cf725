#!/usr/bin/python3
"""
An independent reference for WAL-G's libsodium encryption, on Debian's
python3-nacl (libsodium's own crypto_secretstream_xchacha20poly1305), written
from WAL-G's internal/crypto/libsodium and not from walship's code.

  libsodium-reference.py encrypt|decrypt TRANSFORM (--key TEXT | --key-bytes HEX | --key-file PATH) < input > output

TRANSFORM is WAL-G's WALG_LIBSODIUM_KEY_TRANSFORM: none, base64 or hex.
--key-bytes gives the key setting's bytes in hex, for a setting that is not
UTF-8 text: Go strings are bytes, and WAL-G takes the environment's as they are.
"""
import base64
import sys

from nacl import bindings as sodium

CHUNK = 8192
ABYTES = sodium.crypto_secretstream_xchacha20poly1305_ABYTES
HEADER = sodium.crypto_secretstream_xchacha20poly1305_HEADERBYTES
MESSAGE = sodium.crypto_secretstream_xchacha20poly1305_TAG_MESSAGE
FINAL = sodium.crypto_secretstream_xchacha20poly1305_TAG_FINAL


def key_bytes(transform, raw):
    """WAL-G's keytransform.go on the setting's bytes: none pads or cuts to 32 bytes (at least 25), base64 and hex decode to exactly 32."""
    text = raw.decode("latin-1")
    if transform == "none":
        if len(raw) < 25:
            sys.exit("key too short")
        key = raw[:32].ljust(32, b"\0")
    elif transform == "base64":
        key = base64.b64decode(text, validate=True)
    elif transform == "hex":
        key = bytes.fromhex(text)
    else:
        sys.exit("unknown transform")
    if len(key) != 32:
        sys.exit("key is not 32 bytes")
    return key


def encrypt(key, data):
    """writer.go: the header, full chunks tagged MESSAGE, then one shorter chunk tagged FINAL (empty when len is a multiple of 8192)."""
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    out = [sodium.crypto_secretstream_xchacha20poly1305_init_push(state, key)]
    full = len(data) // CHUNK
    for index in range(full):
        out.append(sodium.crypto_secretstream_xchacha20poly1305_push(state, data[index * CHUNK:(index + 1) * CHUNK], None, MESSAGE))
    out.append(sodium.crypto_secretstream_xchacha20poly1305_push(state, data[full * CHUNK:], None, FINAL))
    return b"".join(out)


def decrypt(key, data):
    """Strictly: every full chunk MESSAGE, exactly one short FINAL chunk, nothing after it."""
    state = sodium.crypto_secretstream_xchacha20poly1305_state()
    sodium.crypto_secretstream_xchacha20poly1305_init_pull(state, data[:HEADER], key)
    out = []
    offset = HEADER
    while True:
        stored = data[offset:offset + CHUNK + ABYTES]
        offset += len(stored)
        message, tag = sodium.crypto_secretstream_xchacha20poly1305_pull(state, stored, None)
        out.append(message)
        if len(stored) == CHUNK + ABYTES:
            if tag != MESSAGE:
                sys.exit("a full chunk not tagged MESSAGE")
            continue
        if tag != FINAL or offset != len(data):
            sys.exit("the short chunk is not the FINAL, last one")
        return b"".join(out)


def main():
    mode, transform, source, value = sys.argv[1:5]
    if source == "--key-file":
        with open(value, "rb") as file:
            value = file.read().decode("utf-8").strip().encode("utf-8")  # WAL-G trims the key file
    elif source == "--key-bytes":
        value = bytes.fromhex(value)
    else:
        value = value.encode("utf-8")
    key = key_bytes(transform, value)
    data = sys.stdin.buffer.read()
    sys.stdout.buffer.write(encrypt(key, data) if mode == "encrypt" else decrypt(key, data))


main()
