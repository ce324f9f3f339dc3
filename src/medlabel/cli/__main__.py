"""``python -m medlabel.cli``."""

from medlabel.cli import main

main()
