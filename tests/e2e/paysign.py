"""
paysign.py - WeChat Pay-shaped payment notifies for the end-to-end tests,
built and signed in Python exactly as plugins/payments/plugin.lua verifies
them: Wechatpay-Signature = base64(HMAC-SHA256(secret,
timestamp + "\\n" + nonce + "\\n" + body + "\\n")) over the body's exact bytes.
Python standard library only.
"""
import base64
import hashlib
import hmac
import itertools
import json

_seq = itertools.count(1)


def out_trade_no(order_id):
    return "tp%08d" % order_id


def sign(secret, timestamp, nonce, body):
    """base64 HMAC-SHA256 of timestamp\\nnonce\\nbody\\n (body: bytes or str)."""
    if isinstance(body, str):
        body = body.encode("utf-8")
    msg = str(timestamp).encode() + b"\n" + nonce.encode() + b"\n" + body + b"\n"
    digest = hmac.new(secret.encode("utf-8"), msg, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


def notify_body(order_id, fen, transaction_id, trade_no=None, create_time=None):
    """The JSON bytes of a TRANSACTION.SUCCESS notify for one order."""
    body = {
        "id": "evt-%d" % next(_seq),
        "create_time": create_time if create_time is not None else "2024-01-01T00:00:00+08:00",
        "event_type": "TRANSACTION.SUCCESS",
        "resource_type": "encrypt-resource",
        "resource": {
            "original_type": "transaction",
            "algorithm": "none",
            "plaintext": {
                "out_trade_no": trade_no if trade_no is not None else out_trade_no(order_id),
                "transaction_id": transaction_id,
                "trade_state": "SUCCESS",
                "amount": {"total": fen, "currency": "CNY"},
            },
        },
    }
    return json.dumps(body).encode("utf-8")


def notify_headers(secret, timestamp, body, nonce=None):
    """The three Wechatpay-* headers (and the content type) for body."""
    nonce = nonce or "nonce%08d" % next(_seq)
    return {
        "Content-Type": "application/json",
        "Wechatpay-Timestamp": str(timestamp),
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Signature": sign(secret, timestamp, nonce, body),
    }


def signed_notify(secret, timestamp, order_id, fen, transaction_id, **kw):
    """(headers, body bytes) of a correctly signed notify."""
    body = notify_body(order_id, fen, transaction_id, **kw)
    return notify_headers(secret, timestamp, body), body
