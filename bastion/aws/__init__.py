"""The AWS half: gateway (every boto3 call), discover, facts, desired, plan, apply, stage,
destroy. Sessions are made once by the pipeline and passed in."""
