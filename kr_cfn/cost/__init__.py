"""``kr-cfn cost``: prices the built templates per month from list prices and usage assumptions.

Reads ``out/<env>/*.yaml`` (the deploy code's loader), never ``stacks/``.
"""
