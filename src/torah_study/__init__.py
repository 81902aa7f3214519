"""Torah Study: a study partner that answers from the Sefaria library and cites it."""

__version__ = "0.1.0"
