"""`python -m connector` = the `mall-connector` command."""

from connector.cli import main

main(prog_name="mall-connector")
