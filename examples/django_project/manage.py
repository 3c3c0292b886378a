#!/usr/bin/env python
"""Django's command-line utility for this example project.

Run from ``examples/django_project/``: ``../../.venv/bin/python manage.py runserver`` (or
``python manage.py runserver`` with the venv active), then open
http://127.0.0.1:8000/orders/42/ (set ``CHATLOG_URL`` to send to a real bot).
"""

import os
import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.append(str(Path(__file__).resolve().parent.parent))  # examples/, for the _local demo helper
    import _local

    _local.use_fake_bot_unless_configured()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
