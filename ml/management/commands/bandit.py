"""``python manage.py bandit start VERSION [VERSION ...] | status | stop``: compare approved
candidates with the champion on live traffic (``ml.services.bandit_start``)."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from ml.models import Experiment
from ml.services import ExperimentRefused, bandit_start, bandit_stop


class Command(BaseCommand):
    help = "Start, show or stop a Thompson-sampling bandit between the champion and candidates."

    def add_arguments(self, parser):
        actions = parser.add_subparsers(dest="action", required=True)
        start = actions.add_parser("start", help="start a bandit with these candidates")
        start.add_argument("candidates", nargs="+", metavar="VERSION")
        start.add_argument("--floor", type=float, default=None)
        start.add_argument("--confidence", type=float, default=None)
        start.add_argument("--min-samples", type=int, default=None)
        actions.add_parser("status", help="the latest bandit's arms")
        stop = actions.add_parser("stop", help="stop the running bandit (candidates retired)")
        stop.add_argument("--note", default="stopped by hand")

    def handle(self, *args, action: str, **options):
        try:
            if action == "start":
                experiment = bandit_start(
                    candidates=options["candidates"],
                    floor=options["floor"],
                    confidence=options["confidence"],
                    min_samples=options["min_samples"],
                )
            elif action == "stop":
                experiment = bandit_stop(note=options["note"])
            else:
                experiment = Experiment.objects.order_by("-id").first()
                if experiment is None:
                    raise CommandError("no bandit has run")
        except ExperimentRefused as exc:
            raise CommandError(str(exc)) from exc
        self._show(experiment)

    def _show(self, experiment: Experiment) -> None:
        self.stdout.write(f"bandit {experiment.pk}: {experiment.status}. {experiment.note}".strip())
        for arm in experiment.arms.order_by("id"):
            role = "champion" if arm.model_version == experiment.champion else "candidate"
            rewards = arm.flag_right + arm.flag_wrong + arm.approval_right + arm.approval_wrong
            self.stdout.write(
                f"  {arm.model_version} ({role}): share {arm.share:.1%}, best with "
                f"probability {arm.chance_best:.3f}; {arm.flagged + arm.approved:,} decided "
                f"({arm.flagged:,} flagged), {rewards:,} rewarded"
            )
