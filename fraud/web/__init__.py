"""The fraud desk's pages: flagged payments (``flags``), the review queue and cases
(``reviews``). Who may open them: ``fraud.access``."""
