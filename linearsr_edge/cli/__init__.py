"""Thin argparse front ends. The argparse ``Namespace`` stops here: each command builds typed options."""
