"""healthstream shared runtime: settings, Kafka helpers, embedded broker, metrics, logging, CLI."""

__version__ = "0.1.0"
