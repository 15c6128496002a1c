"""`python -m agentwheel ...` runs the command line."""

from agentwheel.cli import main

main()
