"""The ASGI entry point: HTTP through Django; websocket routes join as their consumers land."""

import os

from channels.routing import ProtocolTypeRouter
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rideshare.settings")

application = ProtocolTypeRouter({"http": get_asgi_application()})
