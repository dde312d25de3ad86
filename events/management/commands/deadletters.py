"""``python manage.py deadletters <consumer> [--list | --redrive]``: what sits in a consumer's
dead-letter topic, and the chosen records put back on their origin topics once fixed."""

from __future__ import annotations

from datetime import UTC, datetime

from django.core.management.base import BaseCommand, CommandError
from django.utils.timesince import timesince

from events.bus import BusError, bus_from_settings
from events.contracts import dead_letter_topic
from events.deadletters import (
    DeadLetter,
    NotADeadLetter,
    dead_letters_read,
    dead_letters_redrive,
)
from events.registry import CONSUMERS, consumer_spec

DETAIL_SHOWN = 90


def _position(text: str) -> tuple[int, int]:
    partition, sep, offset = text.partition(":")
    if not sep or not partition.isdigit() or not offset.isdigit():
        raise ValueError(f"expected PARTITION:OFFSET, got {text!r}")
    return int(partition), int(offset)


def _when(at: datetime | None, now: datetime) -> str:
    if at is None:
        return "unknown time"
    stamp = at.strftime("%Y-%m-%d %H:%M:%S UTC")
    if (now - at).total_seconds() < 60:
        return f"just now, {stamp}"
    return f"{timesince(at, now).replace(chr(0xA0), ' ')} ago, {stamp}"


class Command(BaseCommand):
    help = (
        "List what sits in a consumer's dead-letter topic (--list, the default), or re-publish "
        "chosen records to their origin topic (--redrive with --at, --kind or --all)."
    )

    def add_arguments(self, parser):
        parser.add_argument("consumer", help=f"one of: {', '.join(sorted(CONSUMERS))}")
        action = parser.add_mutually_exclusive_group()
        action.add_argument("--list", action="store_true", help="list the dead letters")
        action.add_argument(
            "--redrive", action="store_true", help="re-publish the chosen dead letters"
        )
        parser.add_argument(
            "--at", action="append", default=[], metavar="PARTITION:OFFSET",
            help="choose the dead letter at this position of the dead-letter topic (repeatable)",
        )  # fmt: skip
        parser.add_argument(
            "--kind", action="append", default=[],
            help="choose the dead letters of this error kind, e.g. late (repeatable)",
        )  # fmt: skip
        parser.add_argument("--all", action="store_true", help="choose every dead letter")
        parser.add_argument(
            "--topic-namespace", default="", help="the consumer ran under <namespace>."
        )
        parser.add_argument(
            "--timeout", type=float, default=30.0, help="seconds to read the topic to its end"
        )

    def handle(self, *args, consumer: str, **options):
        try:
            consumer_spec(consumer)
        except KeyError as exc:
            raise CommandError(str(exc.args[0])) from exc
        try:
            positions = {_position(text) for text in options["at"]}
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        topic = dead_letter_topic(consumer, namespace=options["topic_namespace"])
        bus = bus_from_settings()
        try:
            letters = dead_letters_read(bus, topic, timeout_s=options["timeout"])
        except (BusError, NotADeadLetter) as exc:
            raise CommandError(f"cannot read {topic}: {exc}") from exc
        chosen = [
            letter
            for letter in letters
            if options["all"]
            or (letter.partition, letter.offset) in positions
            or letter.kind in options["kind"]
        ]
        if not options["redrive"]:
            self._list(topic, letters if not (positions or options["kind"]) else chosen)
            return
        if not (options["all"] or positions or options["kind"]):
            raise CommandError("--redrive needs a choice: --at PARTITION:OFFSET, --kind or --all")
        missing = positions - {(letter.partition, letter.offset) for letter in letters}
        if missing:
            shown = ", ".join(f"{p}:{o}" for p, o in sorted(missing))
            raise CommandError(f"{topic} has no record at {shown}; nothing redriven")
        try:
            sent = dead_letters_redrive(bus, topic, chosen)
        except BusError as exc:
            raise CommandError(str(exc)) from exc
        for letter in chosen:
            self.stdout.write(f"redriven {letter.partition}:{letter.offset} -> {letter.origin}")
        self.stdout.write(f"{consumer}: {sent} dead letters redriven from {topic}")

    def _list(self, topic: str, letters: list[DeadLetter]) -> None:
        if not letters:
            self.stdout.write(f"{topic}: no dead letters")
            return
        now = datetime.now(UTC)
        kinds: dict[str, int] = {}
        for letter in letters:
            kinds[letter.kind] = kinds.get(letter.kind, 0) + 1
        summary = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))
        self.stdout.write(f"{topic}: {len(letters)} dead letters ({summary})")
        for letter in letters:
            detail = letter.detail
            if len(detail) > DETAIL_SHOWN:
                detail = detail[: DETAIL_SHOWN - 1] + "…"
            self.stdout.write(
                f"{letter.partition}:{letter.offset}  from {letter.origin}  {letter.kind}: "
                f"{detail}  ({_when(letter.at, now)})"
            )
