"""Day-two operations on a deployed environment: migrate, smoke, drift, destroy, Qdrant restore, rotation.

Read the built templates and the deployed stacks; never import ``stacks``.
"""
