from django.conf import settings
from django.core.management.base import BaseCommand

from events.bus import bus_from_settings
from events.contracts import TOPICS, dead_letter_topic
from events.registry import CONSUMERS


class Command(BaseCommand):
    help = "Create every declared topic (and each consumer's dead-letter topic) that is missing."

    def handle(self, *args, **options):
        topics = [*TOPICS, *(dead_letter_topic(name) for name in CONSUMERS)]
        bus = bus_from_settings()
        bus.ensure_topics(topics, partitions=settings.EVENT_TOPIC_PARTITIONS)
        for topic in topics:
            self.stdout.write(topic)
