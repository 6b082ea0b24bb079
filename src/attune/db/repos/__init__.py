"""Repositories: one module per aggregate. They read and write rows and never commit."""
