"""``python manage.py stream_features``: an alias of ``manage.py consume stream-features``."""

from events.management.commands.consume import ConsumerAlias


class Command(ConsumerAlias):
    help = "Alias of `consume stream-features`: the stream feature views into the stores."
    consumer_name = "stream-features"
