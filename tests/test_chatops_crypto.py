"""Callback cryptography against every published vector (PLATFORMS-REFERENCE.md 3.7, 4.8, 5.6, 6.4), and
verification that refuses any tampered byte before anything is decrypted or parsed."""

from __future__ import annotations

import json
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatlog.chatops import crypto, dingtalk, feishu, qq, wecom
from chatlog.chatops._http import Refused, ReplayGuard, Request, Response
from chatlog.chatops.events import Inbound

# --- published vectors ---------------------------------------------------------------------------------

FS_KEY = "chatlog-encrypt-key"
FS_CHALLENGE = '{"challenge":"chal-123","token":"vtoken-abc","type":"url_verification"}'
FS_ENCRYPT = ("AAECAwQFBgcICQoLDA0OD5x6e3EALivDaZV5sMOVuB4LCP2UnurKf1LJY+Mjw4iH6M3jamy4VCuBGOpEGrnEAD/7fM+Jzb"
              "gHmGa28boueJi+Ge/fWicirlryuLGs1dwm")
FS_SIGNATURE = "14f4a9f4957f43e1bb6e6a58f00bf011e896cd3a3a2b4ad54139d11a9144672b"
WC_TOKEN, WC_KEY = "QDG6eK", "jWmYm7qr5nMoAUwZRjGtBxmz3KA1tkAj3ykkR6q2B2C"
WC_OFFICIAL = "P9nAzCzyDtyTWESHep1vC5X9xho/qYX3Zpb4yKa9SKld1DsH3Iyt3tP3zNdtp+4RPcs8TgAE7OaBO+FZXvnaqQ=="
WC_OWN = "sKqRbbiSUnDhFHOvPjtUMWzf2R8PrpMiTTPaicBgqZm9eFleDkaZY7LObMBXhUqCcxijQlSKcvc+WpPyowukzA=="
WC_XML = ("<xml><WebhookUrl><![CDATA[https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=KEY]]></WebhookUrl>"
          "<MsgId><![CDATA[msgid-1]]></MsgId><ChatId><![CDATA[wrkSFfCgAAtest]]></ChatId><ChatType>group</ChatType>"
          "<From><UserId>zhangsan</UserId><Name><![CDATA[Zhang San]]></Name>"
          "<Alias><![CDATA[zs]]></Alias></From>"
          "<MsgType>text</MsgType><Text><Content><![CDATA[@bot hello]]></Content></Text></xml>")
WC_POST_ENCRYPT = (
    "sKqRbbiSUnDhFHOvPjtUMQlnm6CL+tprK5QRZlh5AkV8jz/c/BV8hPmpWrVflA0M4M84KSMCZAypVWZN69KtBvzRHc8USJwmTJZ0"
    "b0Ar1+8l0X5WoLxUTHQKQLIL1BY5I+R7qREKdLCAWdADqyhAt1QHtr6aJFiTFmFswrODPTpFpoWrsApa7i7BrM11kX841o9oW6sy"
    "Tkb2dknOc13s3YkctBst0T0I8OoJOtGPbubcxFa5ZsqUEtFncA3l3LyJuZMzyV/9w92fKiJdCGPwT79GEo2zatswDBH75ulM1bVa"
    "u8StVQR8x4xAjSQZBrqzjWI3GIOviA/vAkhDxKFdFfI4E6lSiXb3XaAJKoSj9SYzDH9aFpynDSO76OZDQLM1JUgaKr5dm2JFr6VM"
    "csKqlrXOAhSu/6biZTH9Pbmm5C0VMGmKNkSJbpf1IKSLLfbmDMHMySvEQzvRRF+P4Kf30op4kGh5IuRJQo08yz9m8nP0OX9VnHXV"
    "3kcvSMCFGLWYqzZ5hNKfcqVWpu898LsiwKgEpNLsJ8VQ77UPHBViFZ4="
)
WC_POST_SIGNATURE = "53327fdc2bdba82e71871486f9a396427bc42789"
QQ_OP13 = ("87befc99c42c651b3aac0278e71ada338433ae26fcb24307bdc5ad38c1adc2d01bcfcadc0842edac85e85205028a1132"
           "afe09280305f13aa6909ffc2d652c706")
QQ_SIGN_MD = ("865ad13a61752ca65e26bde6676459cd36cf1be609375b37bd62af366e1dc25a8dc789ba7f14e017ada3d"
              "554c671a911"
              "bfdf075ba54835b23391d509579ed002")
QQ_PRETTY = b'{\n  "op": 0,\n  "d": {},\n  "t": "GATEWAY_EVENT_NAME"\n}'


def test_feishu_official_decrypt_vector_gives_hello_world() -> None:
    assert crypto.feishu_decrypt("P37w+VZImNgPEO1RBhJ6RtKl7n6zymIbEG1pReEzghk=", "test key") == b"hello world"


def test_feishu_own_encrypt_vector_round_trips() -> None:
    assert crypto.feishu_encrypt(FS_CHALLENGE.encode(), FS_KEY, bytes(range(16))) == FS_ENCRYPT
    assert crypto.feishu_decrypt(FS_ENCRYPT, FS_KEY) == FS_CHALLENGE.encode()


def test_feishu_signature_vector() -> None:
    body = json.dumps({"encrypt": FS_ENCRYPT}, separators=(",", ":")).encode()
    assert crypto.feishu_signature("1700000000", "nonce-xyz", FS_KEY, body) == FS_SIGNATURE


def test_wecom_official_vector_signature_and_plaintext() -> None:
    assert crypto.wecom_signature(WC_TOKEN, "1409659589", "263014780", WC_OFFICIAL) == (
        "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3")
    assert crypto.wecom_decrypt(WC_OFFICIAL, WC_KEY) == (b"1616140317555161061", "wx5823bf96d3bd56c7")
    assert crypto.wecom_key(WC_KEY).hex() == (
        "8d69989bbaabe67328014c194631ad0719b3dca035b64023df292447aab60760")


def test_wecom_own_group_bot_echostr_vector() -> None:
    assert crypto.wecom_encrypt(b"1616140317555161061", WC_KEY, "", b"0123456789abcdef") == WC_OWN
    assert crypto.wecom_signature(WC_TOKEN, "1409659589", "263014780", WC_OWN) == (
        "6d98f64d2824842c066636cbebd890acc6e19099")


def test_wecom_own_post_vector() -> None:
    encrypt = crypto.wecom_encrypt(WC_XML.encode(), WC_KEY, "", b"0123456789abcdef")
    assert encrypt == WC_POST_ENCRYPT
    assert crypto.wecom_signature(WC_TOKEN, "1409659813", "1372623149", encrypt) == WC_POST_SIGNATURE
    assert crypto.wecom_decrypt(encrypt, WC_KEY) == (WC_XML.encode(), "")


def test_dingtalk_outgoing_callback_vector() -> None:
    assert crypto.dingtalk_signature("1577262236757", "chatlog-app-secret") == (
        "BJpd80rtvJCZMOZjvaW5pF0bbYDSwVft+imFTfEaXOo=")
    assert crypto.dingtalk_signature("1577262236757", "this is secret") == (
        "hmPWwU+7lVdm3ZZz0r9tSfx0L4Q26jWOZr9+Gs6EZQM=")


def test_qq_official_op13_vector() -> None:
    assert crypto.qq_sign("DG5g3B4j9X2KOErG", b"1725442341Arq0D5A61EgUu4OxUvOp") == QQ_OP13


def test_qq_sign_md_vector_verifies_against_the_pretty_printed_body_only() -> None:
    assert crypto.qq_seed("naOC0ocQE3shWLAfffVLB1rhYPG7") == b"naOC0ocQE3shWLAfffVLB1rhYPG7naOC"
    assert crypto.qq_verify("naOC0ocQE3shWLAfffVLB1rhYPG7", b"1725442341" + QQ_PRETTY, QQ_SIGN_MD)
    compact = b'{"op":0,"d":{},"t":"GATEWAY_EVENT_NAME"}'
    assert not crypto.qq_verify("naOC0ocQE3shWLAfffVLB1rhYPG7", b"1725442341" + compact, QQ_SIGN_MD)


# --- the routes' verification (pure: fixed clocks, no server) -------------------------------------------

FS_OPTS = feishu.options("feishu", {"encrypt_key": FS_KEY, "verification_token": "vtoken-abc"})
WC_OPTS = wecom.options({"token": WC_TOKEN, "encoding_aes_key": WC_KEY})
DT_OPTS = dingtalk.options({"app_secret": "chatlog-app-secret"})
QQ_OPTS = qq.options({"app_id": "102012345", "secret": "DG5g3B4j9X2KOErG"})


def guard(now: float) -> ReplayGuard:
    return ReplayGuard(lambda: now)


def post(path: str, body: bytes, headers: dict[str, str], query: dict[str, str] | None = None) -> Request:
    return Request("POST", path, query or {}, headers, body)


def feishu_event(text: str = "status", event_id: str = "ev-1") -> bytes:
    event = {"schema": "2.0", "header": {"event_id": event_id, "event_type": "im.message.receive_v1",
                                         "token": "vtoken-abc", "create_time": "1700000000000"},
             "event": {"sender": {"sender_id": {"open_id": "ou_alice", "user_id": "alice",
                                                "union_id": "on_a"}},
                       "message": {"message_id": "om_1", "chat_id": "oc_ops", "chat_type": "group",
                                   "message_type": "text",
                                   "content": json.dumps({"text": f"@_user_1 {text}"})}}}
    encrypt = crypto.feishu_encrypt(json.dumps(event).encode(), FS_KEY, bytes(16))
    return json.dumps({"encrypt": encrypt}).encode()


def feishu_headers(body: bytes, ts: str = "1700000000", nonce: str = "n1") -> dict[str, str]:
    return {"x-lark-request-timestamp": ts, "x-lark-request-nonce": nonce,
            "x-lark-signature": crypto.feishu_signature(ts, nonce, FS_KEY, body)}


def test_feishu_signature_vector_request_is_accepted_and_answers_the_encrypted_challenge() -> None:
    body = json.dumps({"encrypt": FS_ENCRYPT}, separators=(",", ":")).encode()
    headers = {"x-lark-request-timestamp": "1700000000", "x-lark-request-nonce": "nonce-xyz",
               "x-lark-signature": FS_SIGNATURE}
    answer = feishu.handle(post("/feishu", body, headers), FS_OPTS, guard(1_700_000_100))
    assert answer == Response(200, b'{"challenge":"chal-123"}')


def test_feishu_unsigned_challenge_needs_key_and_token() -> None:
    body = json.dumps({"encrypt": FS_ENCRYPT}).encode()
    assert isinstance(feishu.handle(post("/feishu", body, {}), FS_OPTS, guard(0)), Response)
    other = feishu.options("feishu", {"encrypt_key": "another-key", "verification_token": "vtoken-abc"})
    with pytest.raises(Refused) as refused:
        feishu.handle(post("/feishu", body, {}), other, guard(0))
    assert refused.value.status == 400
    wrong_token = feishu.options("feishu", {"encrypt_key": FS_KEY, "verification_token": "nope"})
    with pytest.raises(Refused, match="verification token"):
        feishu.handle(post("/feishu", body, {}), wrong_token, guard(0))


def test_feishu_unsigned_event_is_refused_even_with_the_right_key() -> None:
    with pytest.raises(Refused) as refused:
        feishu.handle(post("/feishu", feishu_event(), {}), FS_OPTS, guard(1_700_000_000))
    assert refused.value.status == 401


def test_feishu_message_becomes_a_command_with_the_sender_ids() -> None:
    body = feishu_event("mute #a3f2 1h")
    found = feishu.handle(post("/feishu", body, feishu_headers(body)), FS_OPTS, guard(1_700_000_000))
    assert isinstance(found, Inbound)
    assert found.text == "mute #a3f2 1h"
    assert dict(found.sender) == {"open_id": "ou_alice", "user_id": "alice", "union_id": "on_a"}
    assert found.chat_keys == ("feishu-app:chat_id:oc_ops",)


def test_feishu_stale_timestamp_and_replayed_nonce_are_refused() -> None:
    body = feishu_event()
    with pytest.raises(Refused, match="window"):
        feishu.handle(post("/feishu", body, feishu_headers(body)), FS_OPTS, guard(1_700_000_301))
    shared = guard(1_700_000_000)
    feishu.handle(post("/feishu", body, feishu_headers(body)), FS_OPTS, shared)
    with pytest.raises(Refused, match="replayed"):
        feishu.handle(post("/feishu", body, feishu_headers(body)), FS_OPTS, shared)


def flip(data: bytes, index: int, bit: int) -> bytes:
    index %= len(data)
    return data[:index] + bytes([data[index] ^ (1 << bit)]) + data[index + 1:]


def flip_text(text: str, index: int) -> str:
    index %= len(text)
    replacement = "0" if text[index] != "0" else "1"
    return text[:index] + replacement + text[index + 1:]


@settings(max_examples=60, deadline=None)
@given(part=st.sampled_from(["body", "signature", "timestamp", "nonce"]), index=st.integers(0, 10_000),
       bit=st.integers(0, 7))
def test_feishu_any_changed_byte_is_refused(part: str, index: int, bit: int) -> None:
    body = feishu_event()
    headers = feishu_headers(body, nonce="nonce-abc")
    if part == "body":
        body = flip(body, index, bit)
    else:
        name = {"signature": "x-lark-signature", "timestamp": "x-lark-request-timestamp",
                "nonce": "x-lark-request-nonce"}[part]
        headers[name] = flip_text(headers[name], index)
    with pytest.raises(Refused) as refused:
        feishu.handle(post("/feishu", body, headers), FS_OPTS, guard(1_700_000_000))
    assert refused.value.status == 401


def wecom_post(xml: str, ts: str = "1409659813", nonce: str = "1372623149") -> Request:
    encrypt = crypto.wecom_encrypt(xml.encode(), WC_KEY, "", b"0123456789abcdef")
    signature = crypto.wecom_signature(WC_TOKEN, ts, nonce, encrypt)
    query = {"msg_signature": signature, "timestamp": ts, "nonce": nonce}
    return post("/wecom", f"<xml><Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>".encode(), {}, query)


def test_wecom_get_verification_with_the_official_vector_answers_the_plaintext_only() -> None:
    query = {"msg_signature": "6d98f64d2824842c066636cbebd890acc6e19099", "timestamp": "1409659589",
             "nonce": "263014780", "echostr": WC_OWN}
    answer = wecom.handle(Request("GET", "/wecom", query, {}, b""), WC_OPTS, guard(1409659589))
    assert isinstance(answer, Response)
    assert answer.body == b"1616140317555161061"


def test_wecom_official_vector_is_refused_for_a_group_bot_because_the_receive_id_differs() -> None:
    query = {"msg_signature": "5c45ff5e21c57e6ad56bac8758b79b1d9ac89fd3", "timestamp": "1409659589",
             "nonce": "263014780", "echostr": WC_OFFICIAL}
    with pytest.raises(Refused, match="receive id"):
        wecom.handle(Request("GET", "/wecom", query, {}, b""), WC_OPTS, guard(1409659589))
    app = wecom.options({"token": WC_TOKEN, "encoding_aes_key": WC_KEY, "receive_id": "wx5823bf96d3bd56c7"})
    answer = wecom.handle(Request("GET", "/wecom", query, {}, b""), app, guard(1409659589))
    assert isinstance(answer, Response) and answer.body == b"1616140317555161061"


def test_wecom_post_vector_becomes_a_command_with_its_webhook() -> None:
    request = wecom_post(WC_XML)
    assert request.query["msg_signature"] == WC_POST_SIGNATURE
    found = wecom.handle(request, WC_OPTS, guard(1409659813))
    assert isinstance(found, Inbound)
    assert found.text == "hello"
    assert found.sender == (("userid", "zhangsan"),) and found.chat_id == "wrkSFfCgAAtest"
    assert found.chat_keys[1] == f"wecom:key:{crypto.key_hash('KEY')}"


@settings(max_examples=60, deadline=None)
@given(part=st.sampled_from(["body", "signature", "timestamp", "nonce"]), index=st.integers(0, 10_000),
       bit=st.integers(0, 7))
def test_wecom_any_changed_byte_is_refused(part: str, index: int, bit: int) -> None:
    request = wecom_post(WC_XML)
    query, body = dict(request.query), request.body
    if part == "body":
        start = body.index(b"CDATA[") + 6
        body = body[:start] + flip(body[start:-30], index, bit) + body[-30:]
    else:
        name = {"signature": "msg_signature", "timestamp": "timestamp", "nonce": "nonce"}[part]
        query[name] = flip_text(query[name], index)
    with pytest.raises(Refused) as refused:
        wecom.handle(post("/wecom", body, {}, query), WC_OPTS, guard(1409659813))
    assert refused.value.status in (400, 401)


def test_wecom_xml_with_a_doctype_is_refused_before_parsing() -> None:
    evil = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><Encrypt>&e;</Encrypt></xml>'
    with pytest.raises(Refused) as refused:
        wecom.handle(post("/wecom", evil, {}, {"timestamp": "1", "nonce": "1", "msg_signature": "x"}),
                     WC_OPTS, guard(1))
    assert refused.value.status == 400 and "DOCTYPE" in refused.value.reason


def dingtalk_request(ts: str = "1577262236757", msg_id: str = "msg-1") -> Request:
    body = json.dumps({"msgtype": "text", "text": {"content": " status"}, "msgId": msg_id,
                       "conversationId": "cid-1", "senderStaffId": "staff-1",
                       "sessionWebhook": "http://127.0.0.1:1/robot/sendBySession?session=s"}).encode()
    sign = crypto.dingtalk_signature(ts, "chatlog-app-secret")
    return post("/dingtalk", body, {"timestamp": ts, "sign": sign})


def test_dingtalk_vector_request_within_the_hour_is_accepted() -> None:
    found = dingtalk.handle(dingtalk_request(), DT_OPTS, guard(1577262236.757 + 3599))
    assert isinstance(found, Inbound) and found.text == "status"
    with pytest.raises(Refused, match="window"):
        dingtalk.handle(dingtalk_request(), DT_OPTS, guard(1577262236.757 + 3601))


def test_dingtalk_replayed_message_is_refused() -> None:
    shared = guard(1577262236.757)
    dingtalk.handle(dingtalk_request(), DT_OPTS, shared)
    with pytest.raises(Refused, match="replayed"):
        dingtalk.handle(dingtalk_request(), DT_OPTS, shared)


@settings(max_examples=40, deadline=None)
@given(part=st.sampled_from(["signature", "timestamp"]), index=st.integers(0, 100))
def test_dingtalk_any_changed_header_byte_is_refused(part: str, index: int) -> None:
    request = dingtalk_request()
    name = "sign" if part == "signature" else "timestamp"
    headers = {**request.headers, name: flip_text(request.headers[name], index)}
    with pytest.raises(Refused) as refused:
        dingtalk.handle(post("/dingtalk", request.body, headers), DT_OPTS, guard(1577262236.757))
    assert refused.value.status == 401


def qq_request(body: bytes, ts: str = "1725442341") -> Request:
    return post("/qq", body, {"x-signature-timestamp": ts,
                              "x-signature-ed25519": crypto.qq_sign("DG5g3B4j9X2KOErG", ts.encode() + body)})


def test_qq_op13_validation_answers_the_official_vector_signature() -> None:
    body = b'{"op":13,"d":{"plain_token":"Arq0D5A61EgUu4OxUvOp","event_ts":"1725442341"}}'
    answer = qq.handle(qq_request(body), QQ_OPTS, guard(1725442341))
    assert isinstance(answer, Response)
    assert json.loads(answer.body) == {"plain_token": "Arq0D5A61EgUu4OxUvOp", "signature": QQ_OP13}


def test_qq_group_message_is_acknowledged_with_op_12_and_replied_to_passively() -> None:
    body = json.dumps({"op": 0, "t": "GROUP_AT_MESSAGE_CREATE", "id": "ev1",
                       "d": {"id": "m1", "content": " whoami", "group_openid": "G1",
                             "author": {"member_openid": "M1"}}}).encode()
    found = qq.handle(qq_request(body), QQ_OPTS, guard(1725442341))
    assert isinstance(found, Inbound)
    assert json.loads(found.ack.body) == {"op": 12, "d": 0}
    assert found.text == "whoami" and found.reply_to is not None


@settings(max_examples=40, deadline=None)
@given(part=st.sampled_from(["body", "signature", "timestamp"]), index=st.integers(0, 10_000),
       bit=st.integers(0, 7))
def test_qq_any_changed_byte_is_refused(part: str, index: int, bit: int) -> None:
    request = qq_request(b'{"op":0,"t":"C2C_MESSAGE_CREATE","d":{"id":"m","author":{"user_openid":"U"}}}')
    body, headers = request.body, dict(request.headers)
    if part == "body":
        body = flip(body, index, bit)
    else:
        name = "x-signature-ed25519" if part == "signature" else "x-signature-timestamp"
        headers[name] = flip_text(headers[name], index)
    with pytest.raises(Refused) as refused:
        qq.handle(post("/qq", body, headers), QQ_OPTS, guard(1725442341))
    assert refused.value.status == 401


@pytest.mark.parametrize("garbage", [b"", b"{", b"[]", b'{"encrypt": 5}', b'{"encrypt": "%%%"}',
                                     b'{"encrypt": "AAAA"}', "{\"encrypt\": \"é\"}".encode(), b"\xff\xfe"])
def test_feishu_malformed_unsigned_bodies_are_400_or_401_without_secrets(garbage: bytes) -> None:
    with pytest.raises(Refused) as refused:
        feishu.handle(post("/feishu", garbage, {}), FS_OPTS, guard(0))
    assert refused.value.status in (400, 401)
    assert FS_KEY not in refused.value.reason and "Traceback" not in refused.value.reason


def test_wrong_options_fail_at_construction_with_an_example() -> None:
    with pytest.raises(ValueError, match="encrypt_key"):
        feishu.options("feishu", {"verification_token": "v"})
    with pytest.raises(ValueError, match="43"):
        wecom.options({"token": "abc", "encoding_aes_key": "short"})
    with pytest.raises(ValueError, match="app_secret"):
        dingtalk.options({"secret": "x"})
    with pytest.raises(ValueError, match="AppID"):
        qq.options({"app_id": "abc", "secret": "s"})
    with pytest.raises(ValueError, match=r"feishu-app://") as raised:
        feishu.options("feishu", {"encrypt_key": "k", "verification_token": "v", "app": "https://x:s3cr3t-v@y"})
    assert "s3cr3t-v" not in str(raised.value)


def test_secret_characters_do_not_matter_to_the_seed_length() -> None:
    for secret in ("a", string.ascii_letters, "密钥"):
        assert len(crypto.qq_seed(secret)) == 32


def test_replay_memory_is_bounded() -> None:
    bounded = ReplayGuard(lambda: 1000.0, max_entries=3)
    for nonce in "abcde":
        bounded.remember(nonce)
    assert len(bounded._seen) == 3
    with pytest.raises(Refused, match="replayed"):
        bounded.remember("e")


def test_wecom_and_qq_refuse_stale_timestamps() -> None:
    with pytest.raises(Refused, match="window"):
        wecom.handle(wecom_post(WC_XML), WC_OPTS, guard(1409659813 + 301))
    body = b'{"op":13,"d":{"plain_token":"Arq0D5A61EgUu4OxUvOp","event_ts":"1725442341"}}'
    with pytest.raises(Refused, match="window"):
        qq.handle(qq_request(body), QQ_OPTS, guard(1725442341 - 301))
