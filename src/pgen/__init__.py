"""pgen: a personalization engine for generative AI."""

__version__ = "0.1.0"
