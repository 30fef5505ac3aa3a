"""kr_cfn: KnowledgeRouter's AWS infrastructure as nested CloudFormation stacks."""

__version__ = "0.1.0"
