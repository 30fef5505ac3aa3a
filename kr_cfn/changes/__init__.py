"""The change-set engine: package, change sets, review, the data-loss guard, the offline forecast, apply.

Reads only what ``kr-cfn build`` wrote (``out/<env>/``) and the params; never imports ``stacks``.
"""
