"""View logic of the web pages (plain Python; the routes live in :mod:`cds.api.pages`)."""
