"""The ASGI entry point: HTTP through Django, websockets through Channels consumers.

Websockets pass the origin check (``ALLOWED_HOSTS``: another site's page cannot open a socket
with the rider's cookies) and the session login before reaching a consumer. Each room's routes
are listed by dotted path, imported only once Django is set up.
"""

import os

from channels.auth import AuthMiddlewareStack
from channels.routing import ProtocolTypeRouter, URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from django.core.asgi import get_asgi_application
from django.urls import get_resolver
from django.utils.module_loading import import_string

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

# Set up Django (the app registry) before importing anything that imports models.
django_application = get_asgi_application()

WEBSOCKET_ROUTES = (
    "rideshare.routing.websocket_urlpatterns",
    "fraud.routing.websocket_urlpatterns",
)
websocket_urlpatterns = [route for name in WEBSOCKET_ROUTES for route in import_string(name)]

# Import every view now, not at the first request: Django resolves a URL on the event loop, and
# the first resolution imports the URL conf with the rooms' modules (Feast, LightGBM, pandas), which
# blocked a worker's loop for seconds (long enough, on a busy machine, for gunicorn to kill it as
# hung). With gunicorn's --preload this runs once, in the master, before the workers fork.
get_resolver().url_patterns  # noqa: B018 (the import is the point)

application = ProtocolTypeRouter(
    {
        "http": django_application,
        "websocket": AllowedHostsOriginValidator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns))
        ),
    }
)
