"""What both daemons share: wire format, path rules, settings, lifecycle, logging, Kafka edge."""
