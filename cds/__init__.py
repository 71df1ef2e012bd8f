"""A CDS Hooks 2.0.1 service for follow-up after breast cancer: cards and patient education."""

__all__ = ["__version__"]

__version__ = "0.1.0"
