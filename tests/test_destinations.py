"""Which platform a destination string means, in every form DESIGN section 2 lists."""

from __future__ import annotations

import pytest

from chatlog.destinations import resolve


@pytest.mark.parametrize(
    ("url", "platform", "masked"),
    [
        ("https://open.feishu.cn/open-apis/bot/v2/hook/TOKEN", "feishu", "feishu://***"),
        ("feishu://TOKEN?secret=S", "feishu", "feishu://***"),
        ("https://open.larksuite.com/open-apis/bot/v2/hook/TOKEN", "lark", "lark://***"),
        ("lark://TOKEN", "lark", "lark://***"),
        ("https://oapi.dingtalk.com/robot/send?access_token=TOKEN", "dingtalk", "dingtalk://***"),
        ("dingtalk://TOKEN?secret=SEC123&keyword=alert", "dingtalk", "dingtalk://***"),
        ("https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=KEY", "wecom", "wecom://***"),
        ("wecom://KEY", "wecom", "wecom://***"),
        ("http://127.0.0.1:9/robot/send?access_token=TOKEN", "dingtalk", "access_token=***"),
        ("http://127.0.0.1:9/open-apis/bot/v2/hook/TOKEN?platform=lark", "lark", "127.0.0.1:9"),
        ("feishu-app://cli_a:APPSECRET@open_id/ou_a,ou_b", "feishu-app", "feishu-app://cli_a:***@open_id"),
        ("lark-app://cli_a:APPSECRET@chat_id/oc_a", "lark-app", "lark-app://cli_a:***@chat_id"),
        ("https://open.feishu.cn/open-apis/im/v1/messages?receive_id_type=open_id&receive_ids=ou_a"
         "&app_id=cli_a&app_secret=APPSECRET", "feishu-app", "feishu-app://cli_a:***"),
    ],
)
def test_every_destination_form_picks_its_platform_and_masks_secrets(url: str, platform: str,
                                                                      masked: str) -> None:
    destination = resolve(url).destination
    assert destination.platform == platform
    assert masked in destination.masked()
    for secret in ("TOKEN", "KEY", "APPSECRET", "SEC123"):
        assert secret not in destination.masked() and secret not in repr(destination)


def test_keyword_options_win_over_the_url() -> None:
    resolved = resolve("dingtalk://TOKEN?keyword=url-word", keyword="kw-word")
    assert resolved.keyword == "kw-word"
    app = resolve("feishu-app://cli_a:S@open_id/ou_a", options={"receive_ids": "ou_x,ou_y"}).destination
    assert "ou_x" in app.masked() and "ou_a" not in app.masked()


def test_at_option_lists_mentions() -> None:
    assert resolve("dingtalk://TOKEN?at=13800000000,user1").at == ("13800000000", "user1")


def test_unknown_option_lists_the_platforms_own_options() -> None:
    with pytest.raises(ValueError, match=r"receive_ids; e\.g\. feishu-app://"):
        resolve("feishu-app://cli_a:S@open_id/ou_a?colour=red")
