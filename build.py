#!/usr/bin/env python3
"""Build every environment's templates into out/<env>/ (same as ``kr-cfn build``)."""

import sys

from kr_cfn.cli import main

if __name__ == "__main__":
    sys.exit(main(["build", *sys.argv[1:]]))
