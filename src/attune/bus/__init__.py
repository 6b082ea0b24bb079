"""Message bus port, its memory and RabbitMQ implementations, envelope and topology."""
