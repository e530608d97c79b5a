"""Host-side tools of certpin: the `certpin` command line (see cli.py)."""
