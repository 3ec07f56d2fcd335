"""Command-line front ends: argument handling, one-line errors and the end-of-run summary."""
