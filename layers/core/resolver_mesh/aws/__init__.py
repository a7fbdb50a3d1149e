"""Adapters: the only code that imports boto3 or talks to AWS."""
