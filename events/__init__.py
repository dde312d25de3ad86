"""Event contracts, the bus (Kafka and embedded backends), the outbox relay, dead letters."""
