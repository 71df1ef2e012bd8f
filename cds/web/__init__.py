"""The web pages' view logic, templates and static files (routes: :mod:`cds.api.pages`)."""
