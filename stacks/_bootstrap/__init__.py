"""The bootstrap stack's parts, private to :mod:`stacks.bootstrap` (not a stack: no ``build``, not in CHILDREN).

names: logical ids; github: the GitHub roles' trust; scope: which stacks roles may touch; pipeline: the plan,
release-plan and deploy roles' policies; secrets: which secrets roles may read; boundary: the application
roles' permissions boundary; service_role: the CloudFormation service role.
"""
