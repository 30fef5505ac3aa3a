"""Deploying built templates: packaging, change sets, review, the data-loss guard, apply.

Reads only what ``kr-cfn build`` wrote (``out/<env>/``) and the params; never imports ``stacks``.
"""
