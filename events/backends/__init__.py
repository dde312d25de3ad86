"""Bus backends: Apache Kafka and the embedded durable log on SQLite."""
