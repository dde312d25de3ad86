"""``python manage.py score``: an alias of ``manage.py consume fraud-scorer``."""

from events.management.commands.consume import ConsumerAlias


class Command(ConsumerAlias):
    help = "Alias of `consume fraud-scorer`: score authorized payments."
    consumer_name = "fraud-scorer"
