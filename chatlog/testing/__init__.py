"""Local fake chat platforms for tests: a real HTTP server that answers like Feishu/Lark, DingTalk and WeCom.

    from chatlog.testing import FakePlatforms, Fault

    with FakePlatforms() as fake:
        bot = fake.add_bot("dingtalk", secret="SEC...", keyword="alert")
        ...  # send to bot.url, then look at bot.messages / bot.texts() / bot.received
        app = fake.add_app(recipients={"open_id": ["ou_a", "ou_b"]})   # a Feishu app bot
        ...  # send to app.url("open_id"), then look at app.messages / app.texts("ou_a") / app.token_requests

The pytest plugin (``chatlog.testing.plugin``) offers the same as the ``fake_platforms`` fixture.
"""

from chatlog.testing.apps import FakeApp
from chatlog.testing.bots import FakeBot, Received
from chatlog.testing.faults import Fault
from chatlog.testing.feishu_app import Delivered
from chatlog.testing.rules import PlatformRules
from chatlog.testing.server import PLATFORM_RULES, PLATFORMS, FakePlatforms

__all__ = ["PLATFORMS", "PLATFORM_RULES", "Delivered", "FakeApp", "FakeBot", "FakePlatforms", "Fault",
           "PlatformRules", "Received"]
