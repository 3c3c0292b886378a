"""The platforms' callback cryptography, with pycryptodome (reference 3.7, 4.8, 5.6, 6.4).

Pure functions on bytes and strings; each raises `CryptoError` (never another exception) for input
that does not decode, decrypt or unpad, so a receiver can answer 400 without a traceback. Signature
checks return a bool and compare in constant time.
"""

from __future__ import annotations

import base64
import binascii
import hmac
import struct

from Crypto.Cipher import AES
from Crypto.Hash import HMAC, SHA1, SHA256
from Crypto.PublicKey import ECC
from Crypto.Signature import eddsa
from Crypto.Util.Padding import pad, unpad

WECOM_KEY_CHARS = 43
WECOM_BLOCK = 32
"""WeCom pads to 32 bytes (pad value 1..32), not to AES's 16."""
QQ_SEED_BYTES = 32


class CryptoError(ValueError):
    """Input that is not what the platform sends: bad base64, wrong padding, truncated plaintext."""


def same(expected: str | bytes, given: str | bytes) -> bool:
    """Constant-time equality of two strings or byte strings (False when the types differ)."""
    left = expected.encode() if isinstance(expected, str) else expected
    right = given.encode() if isinstance(given, str) else given
    return hmac.compare_digest(left, right)


def b64decode(text: str | bytes) -> bytes:
    """Strict standard base64 (no stray characters); `CryptoError` otherwise."""
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise CryptoError("not valid base64") from exc


# --- Feishu / Lark ---------------------------------------------------------------------------

def feishu_key(encrypt_key: str) -> bytes:
    """The AES-256 key: SHA-256 of the app's Encrypt Key."""
    return SHA256.new(encrypt_key.encode()).digest()


def feishu_signature(timestamp: str, nonce: str, encrypt_key: str, body: bytes) -> str:
    """``X-Lark-Signature``: hex SHA-256 of timestamp + nonce + encrypt_key + the raw body (not an HMAC)."""
    return SHA256.new((timestamp + nonce + encrypt_key).encode() + body).hexdigest()


def feishu_decrypt(encrypt: str, encrypt_key: str) -> bytes:
    """The plaintext of an ``{"encrypt": …}`` body: AES-256-CBC, IV = first 16 bytes, PKCS#7."""
    raw = b64decode(encrypt)
    if len(raw) < 32 or len(raw) % 16:
        raise CryptoError("the encrypted value has the wrong length")
    cipher = AES.new(feishu_key(encrypt_key), AES.MODE_CBC, iv=raw[:16])
    try:
        return unpad(cipher.decrypt(raw[16:]), 16)
    except ValueError as exc:
        raise CryptoError("the padding is wrong (another Encrypt Key?)") from exc


def feishu_encrypt(plaintext: bytes, encrypt_key: str, iv: bytes) -> str:
    """What Feishu puts in ``encrypt``: base64(iv + AES-256-CBC(PKCS#7(plaintext))); `iv` is 16 bytes."""
    cipher = AES.new(feishu_key(encrypt_key), AES.MODE_CBC, iv=iv)
    return base64.b64encode(iv + cipher.encrypt(pad(plaintext, 16))).decode()


# --- WeCom (WXBizMsgCrypt) ------------------------------------------------------------------

def wecom_key(encoding_aes_key: str) -> bytes:
    """The 32-byte AES key of a 43-character EncodingAESKey (base64 without its ``=``)."""
    if len(encoding_aes_key) != WECOM_KEY_CHARS:
        raise CryptoError("an EncodingAESKey has 43 characters")
    key = b64decode(encoding_aes_key + "=")
    if len(key) != 32:
        raise CryptoError("an EncodingAESKey decodes to 32 bytes")
    return key


def wecom_signature(token: str, timestamp: str, nonce: str, encrypt: str) -> str:
    """``msg_signature``: hex SHA-1 of the four strings sorted and joined."""
    return SHA1.new("".join(sorted([token, timestamp, nonce, encrypt])).encode()).hexdigest()


def wecom_decrypt(encrypt: str, encoding_aes_key: str) -> tuple[bytes, str]:
    """``(message, receive_id)`` of an ``Encrypt`` value (IV = first 16 key bytes, PKCS#7 to 32)."""
    key = wecom_key(encoding_aes_key)
    raw = b64decode(encrypt)
    if not raw or len(raw) % 16:
        raise CryptoError("the encrypted value has the wrong length")
    plain = AES.new(key, AES.MODE_CBC, iv=key[:16]).decrypt(raw)
    try:
        plain = unpad(plain, WECOM_BLOCK)
    except ValueError as exc:
        raise CryptoError("the padding is wrong (another EncodingAESKey?)") from exc
    if len(plain) < 20:
        raise CryptoError("the plaintext is too short")
    (length,) = struct.unpack(">I", plain[16:20])
    if 20 + length > len(plain):
        raise CryptoError("the plaintext is shorter than its length field")
    try:
        receive_id = plain[20 + length:].decode()
    except UnicodeDecodeError as exc:
        raise CryptoError("the receive id is not text") from exc
    return plain[20:20 + length], receive_id


def wecom_encrypt(message: bytes, encoding_aes_key: str, receive_id: str, random16: bytes) -> str:
    """What WeCom puts in ``Encrypt`` (and what a passive reply carries); `random16` is 16 bytes."""
    key = wecom_key(encoding_aes_key)
    plain = random16 + struct.pack(">I", len(message)) + message + receive_id.encode()
    cipher = AES.new(key, AES.MODE_CBC, iv=key[:16])
    return base64.b64encode(cipher.encrypt(pad(plain, WECOM_BLOCK))).decode()


# --- DingTalk -------------------------------------------------------------------------------

def dingtalk_signature(timestamp: str, app_secret: str) -> str:
    """The ``sign`` header: base64 HMAC-SHA256 keyed by the app secret over "timestamp\\napp_secret"."""
    mac = HMAC.new(app_secret.encode(), f"{timestamp}\n{app_secret}".encode(), digestmod=SHA256)
    return base64.b64encode(mac.digest()).decode()


# --- QQ -------------------------------------------------------------------------------------

def qq_seed(secret: str) -> bytes:
    """The Ed25519 seed: the bot secret repeated until it has 32 characters, the first 32 bytes."""
    if not secret:
        raise CryptoError("the QQ bot secret is empty")
    repeated = secret.encode()
    while len(repeated) < QQ_SEED_BYTES:
        repeated *= 2
    return repeated[:QQ_SEED_BYTES]


def qq_sign(secret: str, message: bytes) -> str:
    """Hex Ed25519 signature of `message` with the key derived from the secret."""
    key = ECC.construct(curve="Ed25519", seed=qq_seed(secret))
    return eddsa.new(key, "rfc8032").sign(message).hex()


def qq_verify(secret: str, message: bytes, signature_hex: str) -> bool:
    """True when `signature_hex` is the secret's Ed25519 signature of `message`."""
    try:
        signature = bytes.fromhex(signature_hex)
    except ValueError:
        return False
    if len(signature) != 64:
        return False
    public = ECC.construct(curve="Ed25519", seed=qq_seed(secret)).public_key()
    try:
        eddsa.new(public, "rfc8032").verify(message, signature)
    except ValueError:
        return False
    return True


def key_hash(secret: str) -> str:
    """A short stable name for a credential (a webhook key, a token) that does not reveal it."""
    return SHA256.new(b"chatlog:" + secret.encode()).hexdigest()[:16]
