"""The ASGI entry point: HTTP through Django, websockets through Channels consumers.

Websockets pass the origin check (``ALLOWED_HOSTS``: another site's page cannot open a socket
with the rider's cookies) and the session login before reaching a consumer.
"""

import os

from channels.auth import AuthMiddlewareStack
from channels.routing import ProtocolTypeRouter, URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "rideshare.settings")

# Set up Django (the app registry) before importing anything that imports models.
django_application = get_asgi_application()

from rideshare.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_application,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)
