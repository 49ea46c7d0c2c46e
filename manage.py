#!/usr/bin/env python
import os
import sys


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    from django.core.management import execute_from_command_line

    from config.boot import exit_on_settings_error

    # A setting the process cannot run with is one line on stderr and exit status 2, not a traceback.
    with exit_on_settings_error():
        execute_from_command_line(sys.argv)


if __name__ == "__main__":
    main()
